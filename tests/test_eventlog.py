"""The service's event log on real files: daily and size rotation, expiry, reading back with filters, following,
time parsing, the table, and a real full disk (a tiny tmpfs) that must never leave a half line."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from barkwatch.config import EventsConfig
from barkwatch.service.eventlog import EventFolder, follow, format_line, format_table, log_files, parse_when, read_events
from barkwatch.detection.events import EventLogError

from helpers import fill

BERLIN = ZoneInfo("Europe/Berlin")


def rec(start: str, id: str = "e1", event: str = "bark", **extra) -> dict:
    """A record with the fields the log and the table use."""
    return {"event": event, "id": id, "source": "test", "start": start, "end": start, "offset_s": 0.0,
            "duration_s": 2.5, "peak_score": 0.97, "clip": None, **extra}


def line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def collect(events_dir: Path, stop: threading.Event, **kwargs) -> tuple[threading.Thread, list[str]]:
    """A thread following the log; the ids it has seen so far."""
    seen: list[str] = []

    def run() -> None:
        for record in follow(events_dir, poll_s=0.02, stop=stop, **kwargs):
            seen.append(record["id"])

    thread = threading.Thread(target=run)
    thread.start()
    return thread, seen


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def tiny_fs(tmpfs):
    return tmpfs("64k")


# Writing and rotation


def test_daily_files_are_named_by_each_records_own_local_date_across_dst(tmp_path):
    records = [
        rec("2026-03-28T23:59:59.500+01:00", "a"),
        rec("2026-03-29T00:30:00.000+01:00", "b"),  # still 2026-03-28 in UTC
        rec("2026-03-29T01:59:59.900+01:00", "c"),  # the last second of CET
        rec("2026-03-29T03:00:00.100+02:00", "d"),  # CEST
        rec("2026-03-30T00:00:00.000+02:00", "e"),
        rec("2026-10-25T02:30:00.000+02:00", "f"),  # the repeated hour, both times
        rec("2026-10-25T02:30:00.000+01:00", "g"),
    ]
    with EventFolder(tmp_path, EventsConfig(rotate="daily")) as log:
        for r in records:
            log.write(r)
    assert names(tmp_path) == ["barks-2026-03-28.jsonl", "barks-2026-03-29.jsonl", "barks-2026-03-30.jsonl",
                               "barks-2026-10-25.jsonl"]
    assert (tmp_path / "barks-2026-03-29.jsonl").read_text() == "".join(line(r) for r in records[1:4])
    assert (tmp_path / "barks-2026-10-25.jsonl").read_text() == line(records[5]) + line(records[6])
    assert [r["id"] for r in read_events(tmp_path)] == list("abcdefg")


def test_each_record_is_on_disk_as_soon_as_written(tmp_path):
    log = EventFolder(tmp_path, EventsConfig())
    log.write(rec("2026-11-25T08:00:00.000+01:00"))
    assert (tmp_path / "barks-2026-11-25.jsonl").read_text() == line(rec("2026-11-25T08:00:00.000+01:00"))
    log.close()


def test_size_rotation_renames_a_full_file_and_keeps_the_order(tmp_path):
    clock = iter([datetime(2026, 11, 25, 8, 0, 0, tzinfo=timezone.utc)] * 2
                 + [datetime(2026, 11, 25, 8, 0, s, tzinfo=timezone.utc) for s in range(1, 60)])
    records = [rec("2026-11-25T09:00:00.000+01:00", f"e{i}", pad="x" * 200) for i in range(10)]
    size = len(line(records[0]).encode())
    with EventFolder(tmp_path, EventsConfig(rotate="size", max_file_mb=3.5 * size / 1e6),
                          now=lambda: next(clock)) as log:
        for r in records:
            log.write(r)
        log.write(huge := rec("2026-11-25T09:00:00.000+01:00", "huge", pad="x" * 5000))  # alone in a file
    # Three records a file; the first two renames came in one second, hence the -1.
    assert names(tmp_path) == ["barks-20261125T080000Z-1.jsonl", "barks-20261125T080000Z.jsonl",
                               "barks-20261125T080001Z.jsonl", "barks-20261125T080002Z.jsonl", "barks.jsonl"]
    assert [f.path.name for f in log_files(tmp_path)][:2] == ["barks-20261125T080000Z.jsonl",
                                                              "barks-20261125T080000Z-1.jsonl"]
    assert (tmp_path / "barks-20261125T080000Z.jsonl").read_text() == "".join(line(r) for r in records[:3])
    assert [r["id"] for r in read_events(tmp_path)] == [r["id"] for r in records] + ["huge"]
    assert (tmp_path / "barks.jsonl").read_text() == line(huge)


def test_keep_days_deletes_old_files_on_open_and_at_rotation(tmp_path):
    for name in ("barks-2026-03-01.jsonl", "barks-2026-03-20.jsonl", "barks-20260301T120000Z.jsonl",
                 "barks-20260324T120000Z.jsonl", "barks.jsonl", "notes.txt"):
        (tmp_path / name).write_text("")
    now = [datetime(2026, 3, 25, 12, 0, tzinfo=timezone.utc)]
    log = EventFolder(tmp_path, EventsConfig(keep_days=7), now=lambda: now[0])
    assert names(tmp_path) == ["barks-2026-03-20.jsonl", "barks-20260324T120000Z.jsonl", "barks.jsonl",
                               "notes.txt"]
    log.write(rec("2026-03-25T10:00:00.000+01:00", "a"))
    now[0] = datetime(2026, 4, 2, 18, 0, tzinfo=timezone.utc)
    log.write(rec("2026-03-26T10:00:00.000+01:00", "b"))  # a rotation: what ended before 2026-03-26 18:00 goes
    log.close()
    assert names(tmp_path) == ["barks-2026-03-26.jsonl", "barks.jsonl", "notes.txt"]  # the open file stays


# Reading


def test_since_and_until_filter_by_start(tmp_path, berlin):
    starts = ["2026-03-27T23:00:00.000+01:00", "2026-03-28T08:00:00.000+01:00", "2026-03-29T08:00:00.000+02:00",
              "2026-03-30T08:00:00.000+02:00"]
    with EventFolder(tmp_path, EventsConfig()) as log:
        for i, start in enumerate(starts):
            log.write(rec(start, f"e{i}", event="bark_start"))
            log.write(rec(start, f"e{i}"))
    since = datetime(2026, 3, 28, 7, 0, tzinfo=timezone.utc)  # 08:00+01:00 is 07:00 UTC: included
    until = datetime(2026, 3, 30, 6, 0, tzinfo=timezone.utc)  # 08:00+02:00 is 06:00 UTC: excluded
    assert [r["id"] for r in read_events(tmp_path, since, until)] == ["e1", "e1", "e2", "e2"]
    assert [r["id"] for r in read_events(tmp_path, since=since)][-1] == "e3"
    assert [r["id"] for r in read_events(tmp_path, until=since)] == ["e0", "e0"]
    naive = datetime(2026, 3, 29, 12, 0)  # local time: 10:00 UTC, after e2
    assert [r["id"] for r in read_events(tmp_path, since=naive)] == ["e3", "e3"]
    assert list(read_events(tmp_path / "nowhere")) == []


def test_malformed_lines_are_skipped_with_one_warning_per_file(tmp_path, caplog):
    good = [rec("2026-03-01T08:00:00.000+01:00", "a"), rec("2026-03-01T09:00:00.000+01:00", "b")]
    (tmp_path / "barks-2026-03-01.jsonl").write_text(
        line(good[0]) + "{not json\n\n[1, 2]\n" + '{"event": "bark", "start": "soon"}\n' + line(good[1])
        + '{"event": "bark", "start": "2026-03-01T10:')  # a line cut off by a crash
    with caplog.at_level(logging.WARNING, logger="barkwatch.service.eventlog"):
        assert [r["id"] for r in read_events(tmp_path)] == ["a", "b"]
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "barks-2026-03-01.jsonl" in message and "4 malformed line(s)" in message and "line 2" in message


def test_follow_sees_appended_records_and_the_next_days_file(tmp_path):
    log = EventFolder(tmp_path, EventsConfig())
    log.write(rec("2026-03-28T23:58:00.000+01:00", "old"))
    stop = threading.Event()
    reader, seen = collect(tmp_path, stop, since=datetime(2026, 3, 28, tzinfo=timezone.utc))
    try:
        wait_for(lambda: seen == ["old"])
        log.write(rec("2026-03-28T23:59:00.000+01:00", "same-day"))
        wait_for(lambda: seen == ["old", "same-day"])
        log.write(rec("2026-03-29T00:01:00.000+01:00", "next-day"))
        log.write(rec("2026-03-29T03:01:00.000+02:00", "after-dst"))
        wait_for(lambda: seen == ["old", "same-day", "next-day", "after-dst"])
    finally:
        stop.set()
        reader.join(5)
        log.close()
    assert not reader.is_alive()


def test_follow_carries_on_across_size_rotation(tmp_path):
    records = [rec("2026-11-25T09:00:00.000+01:00", f"e{i}", pad="x" * 200) for i in range(8)]
    log = EventFolder(tmp_path, EventsConfig(rotate="size", max_file_mb=700 / 1e6))
    log.write(records[0])
    stop = threading.Event()
    reader, seen = collect(tmp_path, stop)
    try:
        for r in records[1:]:
            log.write(r)  # faster than the reader polls: several renames between two polls
        wait_for(lambda: len(seen) >= len(records))
    finally:
        stop.set()
        reader.join(5)
        log.close()
    assert seen == [r["id"] for r in records]
    assert len(log_files(tmp_path)) > 2


# Times and tables


def test_parse_when(berlin):
    now = datetime(2026, 3, 29, 12, 0, tzinfo=BERLIN)  # the day DST began at 02:00
    assert parse_when("2h", now) == now - timedelta(hours=2)
    assert parse_when("30m", now) == now - timedelta(minutes=30)
    assert parse_when("90s", now) == now - timedelta(seconds=90)
    assert parse_when(" 7d ", now) == now - timedelta(days=7)
    assert parse_when("today", now).isoformat() == "2026-03-29T00:00:00+01:00"  # midnight was still CET
    assert parse_when("Yesterday", now).isoformat() == "2026-03-28T00:00:00+01:00"
    assert parse_when("2026-11-25", now).isoformat() == "2026-11-25T00:00:00+01:00"
    assert parse_when("2026-07-01T08:00", now).isoformat() == "2026-07-01T08:00:00+02:00"
    assert parse_when("2026-07-01T08:00+00:00", now).isoformat() == "2026-07-01T08:00:00+00:00"
    assert parse_when("1h").tzinfo is not None
    for bad in ("soon", "2x", "", "-2h", "h"):
        with pytest.raises(ValueError, match="use 2h, 7d, today or 2026-11-25"):
            parse_when(bad, now)


def test_table_shows_barks_and_ongoing_events():
    records = [
        rec("2026-11-25T08:00:01.250+01:00", "e1", event="bark_start", duration_s=1.0, peak_score=0.9),
        rec("2026-11-25T08:00:01.250+01:00", "e1", duration_s=2.5, peak_score=0.97,
            clip="/var/lib/barkwatch/clips/2026-11-25/080001_e1.flac"),
        rec("2026-11-25T09:10:00.000+01:00", "e2", event="bark_start", peak_score=0.8123),
    ]
    assert format_table(records).splitlines() == [
        "start                duration   peak  clip",
        "2026-11-25 08:00:01     2.5 s  0.970  080001_e1.flac",
        "2026-11-25 09:10:00   ongoing  0.812  -",
    ]
    every = format_table(records, every=True).splitlines()
    assert len(every) == 4 and every[1].startswith("bark_start  2026-11-25 08:00:01     1.0 s")
    assert format_table([]) == "no barks"
    assert format_line(records[0]) == "2026-11-25 08:00:01  bark started (peak 0.900 so far)"
    assert format_line(records[1]) == "2026-11-25 08:00:01  bark 2.5 s, peak 0.970, clip 080001_e1.flac"


# A full disk


def test_full_disk_leaves_no_half_line_and_the_backlog_is_written_when_space_returns(tiny_fs, caplog):
    events = tiny_fs / "events"
    log = EventFolder(events, EventsConfig())
    day = "2026-11-25T08:00:0{}.000+01:00"
    r1, r2, r3, r4 = (rec(day.format(i), f"e{i}") for i in range(1, 5))
    r2["source"] = "x" * 6000  # more than the rest of the file's page: written part-way, then ENOSPC
    log.write(r1)
    path = events / "barks-2026-11-25.jsonl"
    fill(tiny_fs / "filler")
    with pytest.raises(EventLogError, match=r"barks-2026-11-25.jsonl: cannot write events \(No space left on "
                                            r"device\); 1 record\(s\) kept in memory"):
        log.write(r2)
    assert path.read_text() == line(r1)  # cut back: no half line
    with pytest.raises(EventLogError, match=r"2 record\(s\) kept"):
        log.write(r3)  # small enough to fit, but it waits behind r2: the order stays
    assert path.read_text() == line(r1)
    with caplog.at_level(logging.WARNING, logger="barkwatch.service.eventlog"):
        assert [r["id"] for r in read_events(events)] == ["e1"]
    assert not caplog.records
    (tiny_fs / "filler").unlink()
    log.write(r4)
    assert log.waiting == 0
    assert path.read_text() == "".join(line(r) for r in (r1, r2, r3, r4))
    log.close()


def test_the_backlog_is_bounded_oldest_dropped(tiny_fs):
    log = EventFolder(tiny_fs / "events", EventsConfig(rotate="size"), backlog_max=2)
    fill(tiny_fs / "filler")
    records = [rec("2026-11-25T08:00:00.000+01:00", f"e{i}") for i in range(4)]
    for r in records[:3]:
        with pytest.raises(EventLogError):
            log.write(r)
    assert log.dropped == 1 and log.waiting == 2
    with pytest.raises(EventLogError, match="1 oldest dropped"):
        log.close()  # the last try fails too, and says so
    assert (tiny_fs / "events" / "barks.jsonl").read_text() == ""
    (tiny_fs / "filler").unlink()
    log = EventFolder(tiny_fs / "events", EventsConfig(rotate="size"), backlog_max=2)
    fill(tiny_fs / "filler")
    for r in records[:3]:
        with pytest.raises(EventLogError):
            log.write(r)
    (tiny_fs / "filler").unlink()
    log.write(records[3])
    log.close()
    assert [r["id"] for r in read_events(tiny_fs / "events")] == ["e1", "e2", "e3"]
