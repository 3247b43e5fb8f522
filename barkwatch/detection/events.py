"""Bark events from a stream of scored windows, and the JSON Lines log they are written to.

``EventTracker`` turns overlapping, time-ordered window scores into bark events; ``event_record`` makes the
log record of one; ``EventFile`` appends records to a file (or stdout) one flushed line at a time. No audio and
no torch here: every time comes from the windows, never from the wall clock, so all of it is deterministic.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import reduce
from pathlib import Path
from typing import Callable

RECORD_NAMES = {"start": "bark_start", "end": "bark"}


@dataclass(frozen=True)
class WindowScore:
    """One scored analysis window; times in seconds from the start of the stream."""

    start_s: float
    end_s: float
    score: float  # the classifier's probability of a bark, 0..1
    rl: float
    kl: float
    level_dbfs: float  # the window's RMS level


@dataclass(frozen=True)
class TrackerSettings:
    """How window scores become events (see ``EventTracker`` for the exact rules)."""

    threshold: float
    patience: int = 2  # consecutive high windows that open an event
    release_s: float = 1.0  # within this after the last high window, one high window continues the event
    merge_s: float = 2.0  # within this, a run of ``patience`` high windows rejoins the event
    max_duration_s: float = 600.0  # longer events are cut, so endless barking gives bounded records
    # An open event goes on through windows at or above this (hysteresis): a bark's softer tail keeps it
    # going, while only windows at ``threshold`` can start one. None: ``threshold`` itself.
    hold_threshold: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.hold_threshold is not None and not 0.0 <= self.hold_threshold <= 1.0:
            raise ValueError(f"hold_threshold must be between 0 and 1, got {self.hold_threshold}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be a whole number of windows >= 1, got {self.patience!r}")
        for name in ("release_s", "merge_s"):
            if not getattr(self, name) >= 0.0:  # written so that NaN fails too
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")
        if not self.max_duration_s > 0.0:
            raise ValueError(f"max_duration_s must be > 0 seconds, got {self.max_duration_s}")

    @property
    def hold(self) -> float:
        """The score that continues an open event: ``hold_threshold``, never above ``threshold``."""
        return self.threshold if self.hold_threshold is None else min(self.hold_threshold, self.threshold)


@dataclass(frozen=True)
class Event:
    """A bark event: a snapshot, never changed once handed out (the tracker makes a new one per change)."""

    id: str
    start_s: float  # start of its first high window
    end_s: float  # end of its last high window (or where a long event was cut)
    detected_s: float  # end of the window that confirmed it
    peak_score: float
    mean_score: float  # over its high (and held) windows only
    rl: float  # rl, kl and level_dbfs are those of the peak window (the first, on ties)
    kl: float
    level_dbfs: float
    windows: int  # how many high (and held) windows it holds

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @classmethod
    def from_windows(cls, id: str, windows: list[WindowScore]) -> Event:
        """The event made of the high windows of a confirmed run, detected at the end of the last one."""
        first = windows[0]
        event = cls(id=id, start_s=first.start_s, end_s=first.end_s, detected_s=windows[-1].end_s,
                    peak_score=first.score, mean_score=first.score, rl=first.rl, kl=first.kl,
                    level_dbfs=first.level_dbfs, windows=1)
        return reduce(cls.with_window, windows[1:], event)

    def with_window(self, w: WindowScore) -> Event:
        """This event with one more high window."""
        n = self.windows + 1
        changes = dict(end_s=max(self.end_s, w.end_s), windows=n,
                       mean_score=self.mean_score + (w.score - self.mean_score) / n)
        if w.score > self.peak_score:
            changes.update(peak_score=w.score, rl=w.rl, kl=w.kl, level_dbfs=w.level_dbfs)
        return replace(self, **changes)


def _random_id() -> str:
    return uuid.uuid4().hex[:16]


class EventTracker:
    """A state machine from window scores to event transitions: ``("start", event)`` when an event is
    confirmed, ``("end", event)`` when it is final.

    A window is high when ``score >= threshold`` and holds when ``score >= hold`` (``hold_threshold``, at
    most ``threshold``). Gaps are measured from the end of the event's last high or holding window ``L`` to
    the start of a later window (negative for overlapping windows), and ``H`` is ``max(release_s, merge_s)``:

    - ``patience`` consecutive high windows open an event, starting where the first of them starts;
    - while open, a holding window starting before ``L + release_s`` extends the event at once;
    - a run of high windows whose first starts in ``[L + release_s, L + H)`` rejoins the event (no new start)
      once it is ``patience`` long; a shorter run is ignored, so one stray window does not prolong an event;
    - the event ends (end ``L``) on the first window starting at or after ``L + H`` unless a rejoining run is
      still pending: from then on nothing can join it, so the record comes as early as it can;
    - an event is cut at the start ``C`` of the first window starting ``max_duration_s`` or more after the
      event's start (its end becomes ``min(L, C)``); if that window is high and would have continued the event,
      a new event opens with it at once, without patience. Records last less than ``max_duration_s`` plus one
      window, and the pieces of endless barking are contiguous.
    """

    def __init__(self, settings: TrackerSettings, new_id: Callable[[], str] = _random_id):
        self.settings = settings
        self._new_id = new_id
        self._event: Event | None = None
        self._run: list[WindowScore] = []  # high windows not (yet) part of an event

    @property
    def open_event(self) -> Event | None:
        return self._event

    def update(self, w: WindowScore) -> list[tuple[str, Event]]:
        """Take the next window (in time order); returns the transitions it causes, in order."""
        s = self.settings
        high, holds = w.score >= s.threshold, w.score >= s.hold
        if not high:
            self._run = []
        transitions: list[tuple[str, Event]] = []
        event = self._event
        if event is not None and not self._run and w.start_s >= event.end_s + max(s.release_s, s.merge_s):
            transitions.append(self._close())  # nothing can join it any more
            event = None
        elif event is not None and w.start_s >= event.start_s + s.max_duration_s:
            transitions.append(self._close(at_s=w.start_s))
            if holds and w.start_s < event.end_s + s.release_s:  # still barking: the next piece begins here
                self._event = Event.from_windows(self._new_id(), [w])
                return transitions + [("start", self._event)]
            event = None
        if event is not None and holds and w.start_s < event.end_s + s.release_s:
            self._event = event.with_window(w)
            return transitions
        return transitions + self._add_high(w) if high else transitions

    def _add_high(self, w: WindowScore) -> list[tuple[str, Event]]:
        event = self._event
        self._run.append(w)
        if len(self._run) < self.settings.patience:
            return []
        run, self._run = self._run, []
        if event is not None:  # a confirmed run within merge_s: the same episode
            self._event = reduce(Event.with_window, run, event)
            return []
        self._event = Event.from_windows(self._new_id(), run)
        return [("start", self._event)]

    def flush(self, at_s: float | None = None) -> list[tuple[str, Event]]:
        """End of stream: end the open event (its end no later than ``at_s``, where the stream stopped, when
        given) and drop any run shorter than ``patience``. The tracker is then ready for a new stream."""
        self._run = []
        return [self._close(at_s)] if self._event is not None else []

    def _close(self, at_s: float | None = None) -> tuple[str, Event]:
        event, self._event = self._event, None
        if at_s is not None and at_s < event.end_s:
            event = replace(event, end_s=at_s)
        return "end", event


def _rounded(value: float, digits: int) -> float | None:
    """JSON has no infinities: a non-finite number (the level of digital silence) is written as null."""
    value = float(value)  # numpy scalars are not JSON serialisable
    return round(value, digits) if math.isfinite(value) else None


def _significant(value: float) -> float | None:
    """RL is ~1e-3 and KL ~1e2, so loss terms keep 6 significant digits rather than fixed decimals."""
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None


def event_record(kind: str, event: Event, *, source: str, stream_start: datetime, model: dict | None,
                 clip: str | None = None) -> dict:
    """The log record of a transition: ``bark_start`` for ``"start"``, ``bark`` for ``"end"``.

    Offsets are seconds from ``stream_start`` (timezone-aware); ``start`` and ``end`` are local ISO 8601 times
    whose UTC offset is that of each instant, so a recording across a DST change stays right. In a
    ``bark_start`` record, ``end``, ``end_offset_s`` and ``duration_s`` are what is known at confirmation:
    the end of the confirming window. Times are rounded to ms, scores to 4 decimals, the level to 0.01 dB.
    """
    if kind not in RECORD_NAMES:
        raise ValueError(f"kind must be one of {sorted(RECORD_NAMES)}, got {kind!r}")
    if stream_start.utcoffset() is None:
        raise ValueError(f"stream_start must be timezone-aware, got {stream_start.isoformat()}")
    # Aware arithmetic in a zone like ZoneInfo adds to the wall clock; in UTC it adds elapsed time.
    origin = stream_start.astimezone(timezone.utc)

    def local(offset_s: float) -> str:
        return (origin + timedelta(seconds=float(offset_s))).astimezone().isoformat(timespec="milliseconds")

    return {
        "event": RECORD_NAMES[kind], "id": event.id, "source": source,
        "start": local(event.start_s), "end": local(event.end_s),
        "offset_s": _rounded(event.start_s, 3), "end_offset_s": _rounded(event.end_s, 3),
        "detected_offset_s": _rounded(event.detected_s, 3), "duration_s": _rounded(event.duration_s, 3),
        "peak_score": _rounded(event.peak_score, 4), "mean_score": _rounded(event.mean_score, 4),
        "rl": _significant(event.rl), "kl": _significant(event.kl), "level_dbfs": _rounded(event.level_dbfs, 2),
        "windows": int(event.windows), "model": model, "clip": clip,
    }


class EventLogError(Exception):
    """The event log cannot be written; the message names it."""


class EventFile:
    """Appends records as JSON Lines to ``path`` (parent folders created), or to stdout for ``"-"``.

    Each record is one line written in one call and flushed at once, so ``tail -f`` sees it immediately and a
    crash loses at most the record being written.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if self.path == "-":
            self._file = sys.stdout
            return
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")
        except OSError as e:
            raise self._error(e) from e

    def write(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as e:
            raise self._error(e) from e

    def close(self) -> None:
        try:
            if self._file is sys.stdout:
                self._file.flush()
            else:
                self._file.close()
        except OSError as e:  # a record that could not be written is still buffered
            raise self._error(e) from e

    def __enter__(self) -> EventFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _error(self, e: OSError) -> EventLogError:
        return EventLogError(f"{self.path}: cannot write events ({e.strerror or e})")
