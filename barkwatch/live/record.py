"""Recording a home for training and calibration: keep what is heard, drop the silence.

``barkwatch record`` listens exactly as ``listen`` does (same devices, outages survived, times from the audio),
but what it keeps is audio, for ``barkwatch label``:

- with ``keep="sounds"`` every stretch that stands out from the room (``LevelScorer``: a window ``margin_db``
  above the room's floor, the 10th percentile of the last ten minutes' window levels, or above a fixed
  ``level_dbfs``);
- with ``keep="barks"`` every stretch the model scores at or above a (low) threshold: bark candidates;
- in both, every ``background_every_s`` a sample of whatever the room sounds like then, for calibration.

Each is a FLAC clip with a second either side under ``<out>/clips/<date>/``, and one line in
``<out>/recorded.jsonl`` (kind, clip, local start and end, seconds into the stream, peak level). Recording stops when the clips reach
``max_bytes`` (nothing is ever deleted: recordings for training are worth more than the newest sound).
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import numpy as np

from .clips import ClipRecorder
from ..config import ClipsConfig
from .listener import Hooks

log = logging.getLogger("barkwatch")

INDEX_NAME = "recorded.jsonl"
KEEP_CHOICES = ("sounds", "barks")
FLOOR_WINDOWS = 2400  # ten minutes of windows at a 0.25 s hop
FLOOR_MIN_WINDOWS = 40  # before this many, only the fixed bar counts
MARGIN_S = 1.0  # audio kept either side of a stretch
MAX_STRETCH_S = 30.0  # a longer stretch is cut into pieces of this length


class LevelScorer:
    """A ``WindowScorer`` standing in for a model: a window scores 1 when it stands out from the room, else 0.

    Standing out: at least ``margin_db`` above the room's floor (the 10th percentile of the levels of the last
    ``FLOOR_WINDOWS`` windows) and above ``min_dbfs``; or, with ``level_dbfs``, above that fixed level. The
    window length and rate are the model's, so ``record`` cuts the same windows ``listen`` scores."""

    threshold = 0.5
    sha256 = ""
    path = Path("level")

    def __init__(self, sample_rate: int, window_samples: int, hop_s: float, level_dbfs: float | None = None,
                 margin_db: float = 10.0, min_dbfs: float = -60.0):
        self.sample_rate = sample_rate
        self.window_samples = window_samples
        self.metadata = {"hop_s": hop_s, "threshold": self.threshold}
        self.level_dbfs = level_dbfs
        self.margin_db = margin_db
        self.min_dbfs = min_dbfs
        self._levels = np.full(FLOOR_WINDOWS, np.nan)
        self._seen = 0

    @property
    def floor_dbfs(self) -> float:
        """The room's floor now (NaN until enough windows were heard)."""
        if self._seen < FLOOR_MIN_WINDOWS:
            return math.nan
        return float(np.nanpercentile(self._levels, 10))

    def bar_dbfs(self) -> float:
        if self.level_dbfs is not None:
            return self.level_dbfs
        floor = self.floor_dbfs
        return math.inf if math.isnan(floor) else max(floor + self.margin_db, self.min_dbfs)

    def forward(self, batch):
        import torch

        power = np.mean(np.square(batch.cpu().numpy(), dtype=np.float64), axis=1)
        level = 10.0 * np.log10(np.maximum(power, 1e-12))
        scores = np.empty(len(level))
        for i, value in enumerate(level):  # in order, so each window is judged against the floor before it
            scores[i] = 1.0 if value >= self.bar_dbfs() else 0.0
            self._levels[self._seen % FLOOR_WINDOWS] = value
            self._seen += 1
        nan = np.full(len(level), math.nan)
        return torch.from_numpy(nan), torch.from_numpy(nan), torch.from_numpy(scores)


class Recorder(Hooks):
    """The listener's hooks and record handler for ``record``: clips of each stretch (``record``), samples of
    the background (``audio``), the index, and the disk budget (``on_full`` is called once it is reached)."""

    def __init__(self, out_dir: Path, kind: str, *, max_bytes: int, background_every_s: float = 600.0,
                 background_s: float = 10.0, on_full: Callable[[], None] = lambda: None,
                 wait_for_writer: bool = False):
        self.dir = Path(out_dir)
        self.kind = kind
        self.max_bytes = max_bytes
        self.background_every_s = background_every_s
        self.background_s = background_s
        self.on_full = on_full
        self.wait_for_writer = wait_for_writer  # a file read at full speed: clips wait, none is skipped
        self.counts = {kind: 0, "background": 0}
        self.full = False
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index = open(self.dir / INDEX_NAME, "a", encoding="utf-8")
        self._clips: ClipRecorder | None = None
        self._start: datetime | None = None
        self._paths: dict[str, Path] = {}
        self._open = 0  # stretches begun and not ended
        self._next_background = 0.0
        self._backgrounds = 0
        self._bytes_before = _clip_bytes(self.dir / "clips")

    # Listener hooks (the worker thread)

    def stream_began(self, start: datetime, samplerate: int) -> None:
        if self._clips is not None:
            self._clips.close(timeout=0)
        settings = ClipsConfig(format="flac", pre_roll_s=MARGIN_S, post_roll_s=MARGIN_S,
                               max_total_mb=1e12, max_age_days=0)  # never deletes: the budget stops instead
        self._clips = ClipRecorder(self.dir / "clips", settings, samplerate, max_clip_s=MAX_STRETCH_S + 2 * MARGIN_S,
                                   wait_for_writer=self.wait_for_writer)
        self._start = start
        self._next_background = min(self.background_every_s / 2, 30.0)  # a first sample soon after starting

    def audio(self, mono: np.ndarray, offset_s: float) -> None:
        if self._clips is None:
            return
        self._clips.feed(mono, offset_s)
        self._check_budget()
        if self.full or self.background_every_s <= 0 or offset_s < self._next_background or self._open:
            return
        self._backgrounds += 1
        record = self._record(f"background-{self._backgrounds:05d}", offset_s, offset_s + self.background_s)
        path = self._clips.start(record)
        self._clips.end(record)
        self._write_index("background", record, path, level=None)
        self._next_background = offset_s + self.background_every_s

    def stream_ended(self) -> None:
        if self._clips is not None:
            self._clips.flush()

    def record(self, record: dict) -> None:
        """``on_record``: a ``bark_start`` begins a clip, a ``bark`` ends it and indexes it."""
        if self._clips is None or self.full:
            return
        if record["event"] == "bark_start":
            self._paths[record["id"]] = self._clips.start(record)
            self._open += 1
        elif record["event"] == "bark" and record["id"] in self._paths:
            self._open -= 1
            self._clips.end(record)
            self._write_index(self.kind, record, self._paths.pop(record["id"]), level=record.get("level_dbfs"),
                              score=record.get("peak_score") if self.kind == "bark" else None)
        self._check_budget()

    def _check_budget(self) -> None:
        # The clip writer measures the folder after each clip it writes; this reads its last figure (cheap).
        if not self.full and self.used_bytes() >= self.max_bytes:
            self.full = True
            log.warning("%s: the clips reached the disk budget (%g MB); recording stops", self.dir,
                        self.max_bytes / 1e6)
            self.on_full()

    def used_bytes(self) -> int:
        """Bytes of clips under ``<out>/clips`` as of the clip writer's last pass (earlier runs included)."""
        return self._clips.usage()[1] if self._clips is not None and self._clips.usage()[0] else self._bytes_before

    def close(self) -> None:
        if self._clips is not None:
            self._clips.close(timeout=None)
        self._index.close()

    # Helpers

    def _record(self, event_id: str, start_s: float, end_s: float) -> dict:
        assert self._start is not None
        start = self._start

        def local(seconds: float) -> str:
            return (start + timedelta(seconds=seconds)).astimezone().isoformat(timespec="milliseconds")

        return {"event": "background", "id": event_id, "start": local(start_s), "end": local(end_s),
                "offset_s": start_s, "end_offset_s": end_s}

    def _write_index(self, kind: str, record: dict, path: Path, level: float | None,
                     score: float | None = None) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        start = datetime.fromisoformat(record["start"])
        line = {"kind": kind, "clip": os.path.relpath(path, self.dir), "start": record["start"],
                "end": record["end"], "duration_s": round(record["end_offset_s"] - record["offset_s"], 3),
                "offset_s": round(record["offset_s"], 3),
                "clip_starts_s_before": round(min(MARGIN_S, record["offset_s"]), 3),
                "level_dbfs": level, "score": score, "recorded": start.strftime("%Y-%m-%d")}
        self._index.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._index.flush()


def _clip_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in (".flac", ".ogg") and p.is_file())


def read_index(out_dir: Path) -> list[dict]:
    """The lines of ``<out>/recorded.jsonl`` (unreadable lines skipped)."""
    path = Path(out_dir) / INDEX_NAME
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "clip" in entry:
            entries.append(entry)
    return entries
