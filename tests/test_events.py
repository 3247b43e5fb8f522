"""Bark events from score sequences (1 s windows every 0.25 s), their log records and the JSON Lines log."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from barkwatch.detection.events import (
    Event, EventFile, EventLogError, EventTracker, TrackerSettings, WindowScore, event_record,
)

HOP, LENGTH = 0.25, 1.0
HIGH, LOW = 0.9, 0.1


def windows(scores: list[float]) -> list[WindowScore]:
    """Window i covers [i * HOP, i * HOP + LENGTH]; its rl, kl and level encode i, to trace where they came from."""
    return [WindowScore(start_s=i * HOP, end_s=i * HOP + LENGTH, score=s, rl=0.001 * (i + 1), kl=100.0 + i,
                        level_dbfs=-40.0 + i) for i, s in enumerate(scores)]


def tracker(patience: int = 2, release_s: float = 1.0, merge_s: float = 2.0, max_duration_s: float = 600.0,
            threshold: float = 0.5, hold_threshold: float | None = None) -> EventTracker:
    ids = itertools.count(1)
    return EventTracker(TrackerSettings(threshold, patience, release_s, merge_s, max_duration_s, hold_threshold),
                        new_id=lambda: f"e{next(ids)}")


def feed(t: EventTracker, scores: list[float], flush: bool = True) -> list[tuple[int | None, str, Event]]:
    """Every transition as (index of the window that caused it, or None for the flush, kind, event)."""
    out = [(i, kind, e) for i, w in enumerate(windows(scores)) for kind, e in t.update(w)]
    return out + [(None, kind, e) for kind, e in t.flush()] if flush else out


def kinds(transitions) -> list[str]:
    return [kind for _, kind, _ in transitions]


def test_scores_below_the_threshold_give_no_event():
    assert feed(tracker(), [0.49] * 40) == []


def test_a_run_shorter_than_patience_gives_nothing_even_when_high_windows_add_up():
    assert feed(tracker(patience=3), [HIGH, HIGH, LOW, HIGH, HIGH, LOW] * 3) == []


def test_exactly_patience_windows_at_or_above_the_threshold_open_an_event():
    t = tracker(patience=2)
    got = feed(t, [LOW] * 4 + [0.5, HIGH], flush=False)
    assert [(i, kind) for i, kind, _ in got] == [(5, "start")]
    event = got[0][2]
    assert (event.start_s, event.end_s, event.detected_s, event.windows) == (1.0, 2.25, 2.25, 2)
    assert t.open_event == event


@pytest.mark.parametrize("release_s, merge_s, closing_window", [(1.0, 1.0, 11), (1.0, 2.0, 15), (2.0, 1.0, 15)])
def test_an_event_ends_after_release_and_merge_time_at_its_last_high_window(release_s, merge_s, closing_window):
    # High windows 0..3 (the last ends at 1.75 s); the event can end once a window starts at 1.75 + max(...).
    got = feed(tracker(release_s=release_s, merge_s=merge_s), [HIGH] * 4 + [LOW] * 20)
    assert [(i, kind) for i, kind, _ in got] == [(1, "start"), (closing_window, "end")]
    assert windows([0] * 20)[closing_window].start_s == 1.75 + max(release_s, merge_s)
    end = got[1][2]
    assert (end.start_s, end.end_s, end.windows, end.id) == (0.0, 1.75, 4, got[0][2].id)


def test_one_high_window_within_release_continues_the_event():
    # Window 8 starts at 2.0 s, less than release (1 s) after the last high window's end (1.75 s).
    got = feed(tracker(patience=2), [HIGH] * 4 + [LOW] * 4 + [HIGH] + [LOW] * 20)
    assert kinds(got) == ["start", "end"]
    assert (got[1][2].end_s, got[1][2].windows) == (3.0, 5)


def test_a_confirmed_run_within_merge_time_joins_the_event():
    # Window 11 starts 1.0 s after 1.75 s: past release, within merge, so the run must reach patience again.
    got = feed(tracker(patience=2), [HIGH] * 4 + [LOW] * 7 + [HIGH] * 2 + [LOW] * 20)
    assert kinds(got) == ["start", "end"]
    assert (got[1][2].start_s, got[1][2].end_s, got[1][2].windows) == (0.0, 4.0, 6)


def test_a_run_that_begins_within_merge_time_rejoins_even_when_confirmed_after_it():
    # Window 14 starts at 3.5 s, before 1.75 + 2.0; windows 15 and 16 start at or past it, the run pending.
    got = feed(tracker(patience=3), [HIGH] * 4 + [LOW] * 10 + [HIGH] * 3 + [LOW] * 20)
    assert kinds(got) == ["start", "end"]
    assert (got[1][2].end_s, got[1][2].windows) == (5.0, 7)


def test_a_stray_window_past_release_does_not_rejoin_unless_patience_is_one():
    scores = [HIGH] * 4 + [LOW] * 7 + [HIGH] + [LOW] * 20
    got = feed(tracker(patience=2), scores)
    assert kinds(got) == ["start", "end"]
    assert (got[1][2].end_s, got[1][2].windows) == (1.75, 4)
    got = feed(tracker(patience=1), scores)
    assert kinds(got) == ["start", "end"]
    assert (got[1][2].end_s, got[1][2].windows) == (3.75, 5)


def test_a_long_gap_gives_two_events_with_their_own_ids():
    t = EventTracker(TrackerSettings(0.5))  # random ids
    got = feed(t, [HIGH] * 4 + [LOW] * 16 + [HIGH] * 4)
    assert [(i, kind) for i, kind, _ in got] == [(1, "start"), (15, "end"), (21, "start"), (None, "end")]
    first, second = got[1][2], got[3][2]
    assert got[0][2].id == first.id and got[2][2].id == second.id and first.id != second.id
    assert (second.start_s, second.end_s) == (5.0, 6.75)


def test_max_duration_splits_endless_barking_into_contiguous_bounded_events():
    got = feed(tracker(max_duration_s=5.0), [HIGH] * 100)  # window starts 0 .. 24.75 s
    assert kinds(got) == ["start", "end"] * 5
    ends = [e for _, kind, e in got if kind == "end"]
    starts = [e for _, kind, e in got if kind == "start"]
    assert [e.start_s for e in ends] == [0.0, 5.0, 10.0, 15.0, 20.0]
    assert [e.end_s for e in ends] == [5.0, 10.0, 15.0, 20.0, 25.75]
    assert all(a.end_s == b.start_s for a, b in zip(ends, ends[1:]))
    assert all(e.duration_s < 5.0 + LENGTH for e in ends)
    assert [e.windows for e in ends] == [20, 20, 20, 20, 20]
    # The next piece opens at once (no patience) with the end of the previous one.
    assert [i for i, kind, _ in got if kind == "start"] == [1, 20, 40, 60, 80]
    assert [e.detected_s for e in starts[1:]] == [6.0, 11.0, 16.0, 21.0]
    assert len({e.id for e in starts}) == 5


def test_flush_ends_an_open_event_and_ignores_unconfirmed_runs():
    t = tracker(patience=2)
    got = feed(t, [HIGH] * 4 + [LOW] * 7 + [HIGH])  # window 11 is a pending rejoin run of one
    assert [(i, kind) for i, kind, _ in got] == [(1, "start"), (None, "end")]
    assert (got[1][2].end_s, got[1][2].windows) == (1.75, 4)
    assert t.open_event is None and t.flush() == []
    assert feed(tracker(patience=3), [LOW, HIGH, HIGH]) == []
    t = tracker()
    feed(t, [HIGH] * 4, flush=False)
    assert [(kind, e.end_s) for kind, e in t.flush(at_s=1.5)] == [("end", 1.5)]


def test_peak_mean_and_loss_terms_come_from_the_high_windows():
    t = tracker(patience=2)
    got = feed(t, [0.6, 0.95, 0.2, 0.95, 0.8] + [LOW] * 20)
    start, end = got[0][2], got[1][2]
    assert (end.peak_score, end.rl, end.kl, end.level_dbfs) == (0.95, 0.002, 101.0, -39.0)  # first peak
    assert end.mean_score == pytest.approx((0.6 + 0.95 + 0.95 + 0.8) / 4)  # the low window is left out
    assert end.windows == 4 and end.end_s == 2.0
    # The start event is a snapshot of what was known at confirmation.
    assert (start.end_s, start.windows, start.mean_score) == (1.25, 2, pytest.approx(0.775))


TAIL = 0.3  # between the hold threshold and the threshold: a bark's softer tail


def test_a_tail_above_the_hold_threshold_keeps_the_event_going():
    scores = [HIGH] * 3 + [TAIL] * 8 + [LOW] * 20
    plain = feed(tracker(), scores)[-1][2]
    held = feed(tracker(hold_threshold=0.25), scores)[-1][2]
    assert plain.end_s == 1.5 and plain.windows == 3
    assert held.end_s == 10 * HOP + LENGTH and held.windows == 11
    assert held.mean_score == pytest.approx((3 * HIGH + 8 * TAIL) / 11)


def test_windows_above_only_the_hold_threshold_never_open_or_rejoin_an_event():
    assert feed(tracker(hold_threshold=0.25), [TAIL] * 20) == []
    # Past release, a run of holding windows is not a rejoining run: the event ends at its last high window.
    got = feed(tracker(release_s=0.0, merge_s=2.0, hold_threshold=0.25), [HIGH] * 2 + [LOW] * 3 + [TAIL] * 4
               + [LOW] * 20)
    assert kinds(got) == ["start", "end"] and got[-1][2].end_s == 1.25


def test_a_hold_threshold_above_the_threshold_is_the_threshold():
    assert TrackerSettings(threshold=0.5, hold_threshold=0.8).hold == 0.5
    assert TrackerSettings(threshold=0.5).hold == 0.5
    assert TrackerSettings(threshold=0.9, hold_threshold=0.6).hold == 0.6


@pytest.mark.parametrize("field, kwargs", [
    ("hold_threshold", {"hold_threshold": -0.1}), ("hold_threshold", {"hold_threshold": float("nan")}),
    ("threshold", {"threshold": 1.5}), ("threshold", {"threshold": float("nan")}),
    ("patience", {"patience": 0}), ("patience", {"patience": 1.5}), ("release_s", {"release_s": -1.0}),
    ("merge_s", {"merge_s": float("nan")}), ("max_duration_s", {"max_duration_s": 0.0}),
])
def test_settings_validation_names_the_field(field, kwargs):
    with pytest.raises(ValueError, match=f"^{field} "):
        TrackerSettings(**{"threshold": 0.5, **kwargs})


EVENT = Event(id="abc", start_s=30.0, end_s=120.0, detected_s=30.5, peak_score=0.987654, mean_score=0.91234,
              rl=0.00123456789, kl=123.456789, level_dbfs=-23.456, windows=357)
MODEL = {"file": "m.pt", "sha256": "0123456789abcdef"}


def test_event_record_fields_order_and_offsets_across_a_dst_change(berlin):
    start = datetime(2026, 3, 29, 1, 59, tzinfo=timezone(timedelta(hours=1)))  # DST begins at 02:00
    record = event_record("end", EVENT, source="mic", stream_start=start, model=MODEL, clip="clips/abc.flac")
    assert record == {
        "event": "bark", "id": "abc", "source": "mic",
        "start": "2026-03-29T01:59:30.000+01:00", "end": "2026-03-29T03:01:00.000+02:00",
        "offset_s": 30.0, "end_offset_s": 120.0, "detected_offset_s": 30.5, "duration_s": 90.0,
        "peak_score": 0.9877, "mean_score": 0.9123, "rl": 0.00123457, "kl": 123.457, "level_dbfs": -23.46,
        "windows": 357, "model": MODEL, "clip": "clips/abc.flac",
    }
    assert list(record) == ["event", "id", "source", "start", "end", "offset_s", "end_offset_s",
                            "detected_offset_s", "duration_s", "peak_score", "mean_score", "rl", "kl",
                            "level_dbfs", "windows", "model", "clip"]


def test_event_record_adds_elapsed_time_to_a_start_in_a_dst_zone(berlin):
    start = datetime(2026, 3, 29, 1, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    event = Event("x", 0.0, 7200.0, 1.0, 0.9, 0.9, 0.1, 1.0, -20.0, 2)
    record = event_record("end", event, source="mic", stream_start=start, model=None)
    # Two hours after 01:00 CET is 04:00 CEST; wall-clock arithmetic would say 03:00.
    assert (record["start"], record["end"]) == ("2026-03-29T01:00:00.000+01:00", "2026-03-29T04:00:00.000+02:00")
    assert record["model"] is None and record["clip"] is None


def test_bark_start_record_shows_what_was_known_at_confirmation():
    t = tracker(patience=3)
    got = feed(t, [HIGH] * 6 + [LOW] * 20)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first, last = (event_record(k, e, source="a.wav", stream_start=start, model=None) for _, k, e in got)
    assert (first["event"], last["event"]) == ("bark_start", "bark")
    assert first["id"] == last["id"]
    assert (first["end_offset_s"], first["detected_offset_s"], first["duration_s"]) == (1.5, 1.5, 1.5)
    assert (last["end_offset_s"], last["detected_offset_s"], last["duration_s"]) == (2.25, 1.5, 2.25)


def test_event_record_refuses_a_naive_start_and_an_unknown_kind():
    with pytest.raises(ValueError, match="timezone-aware"):
        event_record("end", EVENT, source="mic", stream_start=datetime(2026, 1, 1), model=None)
    with pytest.raises(ValueError, match="kind"):
        event_record("stop", EVENT, source="mic", stream_start=datetime(2026, 1, 1, tzinfo=timezone.utc),
                     model=None)


def test_event_record_is_valid_json_for_numpy_numbers_and_silence():
    w = WindowScore(np.float32(0.0), np.float32(1.0), np.float32(0.75), np.float32(0.01), np.float32(50.0),
                    float("-inf"))
    event = Event.from_windows("n", [w])
    record = event_record("start", event, source="mic", stream_start=datetime.now(timezone.utc), model=None)
    assert record["level_dbfs"] is None and record["peak_score"] == 0.75
    assert json.loads(json.dumps(record, allow_nan=False)) == record


def test_event_log_appends_one_line_per_record_visible_before_close(tmp_path):
    path = tmp_path / "logs" / "events.jsonl"  # the folder does not exist yet
    records = [{"event": "bark_start", "id": "a", "source": "Küche"}, {"event": "bark", "id": "a"}]
    log = EventFile(path)
    log.write(records[0])
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == records[:1]
    log.close()
    with EventFile(path) as log:  # appends to what is there
        log.write(records[1])
        assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == records


def test_event_log_dash_writes_to_stdout(capsys):
    with EventFile("-") as log:
        log.write({"event": "bark", "id": "a"})
        log.write({"event": "bark", "id": "b"})
    assert capsys.readouterr().out == '{"event": "bark", "id": "a"}\n{"event": "bark", "id": "b"}\n'


def test_event_log_unwritable_path_raises_naming_it(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    path = tmp_path / "file" / "events.jsonl"
    with pytest.raises(EventLogError, match=f"^{path}: cannot write events"):
        EventFile(path)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_event_log_write_error_raises_naming_the_path():
    log = EventFile("/dev/full")
    with pytest.raises(EventLogError, match="^/dev/full: cannot write events"):
        log.write({"event": "bark"})
    with pytest.raises(EventLogError, match="^/dev/full: cannot write events"):
        log.close()  # the line is still buffered
