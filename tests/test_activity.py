"""`barkwatch report`: the activity report from a real event log (`barkwatch detect` on the example
recording, at three start times), and the pure counting on hand-made records, DST included."""

from __future__ import annotations

import base64
import json
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import SAMPLES, run_cli

from barkwatch.home.activity import episodes_of, hour_pieces, summarise


def record(start: datetime, seconds: float, event: str = "bark") -> dict:
    return {"event": event, "start": start.isoformat(), "end": (start + timedelta(seconds=seconds)).isoformat(),
            "peak_score": 0.9, "source": "mic", "clip": None}


def test_a_bark_over_the_hour_counts_in_both_hours_by_its_seconds(berlin):
    start = datetime(2026, 11, 20, 9, 59, 50).astimezone()
    pieces = hour_pieces(start, start + timedelta(seconds=25))
    assert pieces == [(date(2026, 11, 20), 9, 10.0), (date(2026, 11, 20), 10, 15.0)]
    midnight = datetime(2026, 11, 20, 23, 59, 58).astimezone()
    assert [p[:2] for p in hour_pieces(midnight, midnight + timedelta(seconds=4))] == [
        (date(2026, 11, 20), 23), (date(2026, 11, 21), 0)]


def test_hours_follow_the_local_clock_across_the_dst_change(berlin):
    # 2026-03-29: Berlin's clocks go from 02:00 to 03:00. Ten minutes from 01:55 local (00:55 UTC) end at
    # 03:05 local: five minutes in hour 1 and the rest in hour 3, none in the hour that does not exist.
    start = datetime(2026, 3, 29, 0, 55, tzinfo=timezone.utc)
    pieces = hour_pieces(start, start + timedelta(minutes=10))
    assert [(h, s) for _, h, s in pieces] == [(1, 300.0), (3, 300.0)]
    activity = summarise([record(start, 600)], date(2026, 3, 29), date(2026, 3, 29))
    assert activity.seconds[0, 1] == 300 and activity.seconds[0, 2] == 0 and activity.seconds[0, 3] == 300


def test_summarise_counts_barks_time_and_episodes(berlin):
    t0 = datetime(2026, 11, 20, 8, 0).astimezone()
    records = [record(t0, 4), record(t0, 4, event="bark_start"),  # a bark_start is not a second bark
               record(t0 + timedelta(seconds=30), 6),  # 26 s after the first ended: same episode
               record(t0 + timedelta(minutes=30), 2),  # a new episode
               record(t0 + timedelta(days=2, hours=13), 3),
               {"event": "bark", "start": "not a time"}]
    a = summarise(records, date(2026, 11, 19), date(2026, 11, 23), gap_s=60)
    assert len(a.days) == 5 and len(a.barks) == 4 and a.skipped == 1
    assert a.total_s == 15 and a.counts.sum() == 4
    assert a.counts[1, 8] == 3 and a.seconds[1, 8] == 12 and a.counts[3, 21] == 1
    assert [len(e.barks) for e in a.episodes] == [2, 1, 1]
    assert a.episodes[0].span_s == 36 and a.episodes[0].barking_s == 10
    assert len(episodes_of(a.barks, gap_s=10)) == 4


@pytest.mark.slow
def test_report_from_a_real_event_log(tmp_path):
    log = tmp_path / "events.jsonl"
    starts = ["2026-11-20T09:00:00", "2026-11-20T21:40:00", "2026-11-22T14:30:00"]
    for start in starts:
        result = run_cli("detect", str(SAMPLES / "example.ogg"), "--events", str(log), "--clips",
                         str(tmp_path / "clips"), "--start", start, "-q")
        assert result.returncode == 0, result.stderr
    barks = [json.loads(x) for x in log.read_text().splitlines() if '"event": "bark"' in x]
    assert len(barks) >= 6

    out = tmp_path / "report"
    result = run_cli("report", "--events", str(log), "--since", "2026-11-19", "--until", "2026-11-24",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    total = sum(b["duration_s"] for b in barks)
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"2026-11-19 to 2026-11-23: {len(barks)} bark(s), ")
    assert "3 episode(s)" in first  # the three runs of the recording, hours apart
    assert "busiest day 2026-11-20" in result.stdout

    page = (out / "index.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert (out / "hours.png").stat().st_size > 10_000 and (out / "days.png").stat().st_size > 10_000
    links = re.findall(r'<a href="([^"]+)">', page)
    assert len(links) >= len(barks) and all((out / link).resolve().is_file() for link in links)
    day_rows = re.findall(r"<tr><td>(\w{3} 2026-11-\d\d)</td><td class=n>(\d+)</td>", page)
    assert [int(n) for _, n in day_rows] == [0, 2 * len(barks) // 3, 0, len(barks) // 3, 0]
    summary_seconds = re.search(r"bark\(s\), (?:(\d+) min )?(\d+) s of barking", first)
    assert int(summary_seconds.group(1) or 0) * 60 + int(summary_seconds.group(2)) == round(total)


def test_report_says_what_is_missing(tmp_path):
    result = run_cli("report", "--events", str(tmp_path / "none.jsonl"))
    assert result.returncode == 2 and "none.jsonl" in result.stderr
    result = run_cli("report", "--dir", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "nowhere" in result.stderr and "no event log" in result.stderr
    result = run_cli("report", "--events", str(tmp_path / "x"), "--since", "last tuesday")
    assert result.returncode == 2 and "--since" in result.stderr


def test_an_empty_period_still_makes_a_page(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_text("")
    result = run_cli("report", "--events", str(log), "--since", "2026-11-01", "--until", "2026-11-03",
                     "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "0 bark(s)" in result.stdout and (tmp_path / "r" / "index.html").is_file()
    assert Path(tmp_path / "r" / "hours.png").stat().st_size > 5_000
