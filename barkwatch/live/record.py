"""Recording a home for training and calibration: keep what is heard, drop the silence.

``barkwatch record`` listens exactly as ``listen`` does (same devices, outages survived, times from the audio),
but what it keeps is audio, for ``barkwatch label``:

- with ``keep="sounds"`` every stretch that stands out from the room (``LevelScorer``: a window ``margin_db``
  above the room's floor, the 10th percentile of the last ten minutes' window levels, or above a fixed
  ``level_dbfs``);
- with ``keep="barks"`` every stretch the model scores at or above a (low) threshold: bark candidates;
- in both, every ``background_every_s`` a sample of whatever the room sounds like then, for calibration;
- with ``keep="all"`` (``StreamRecorder``) everything, as FLAC pieces of ``piece_s`` under ``<out>/audio/``:
  an hour of the home with the dog away, for ``calibrate --background``.

Each is a FLAC clip with a second either side under ``<out>/clips/<date>/``, and one line in
``<out>/recorded.jsonl`` (kind, clip, local start and end, seconds into the stream, peak level). Recording stops when the clips reach
``max_bytes`` (nothing is ever deleted: recordings for training are worth more than the newest sound).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import numpy as np

from .clips import ClipRecorder
from ..config import ClipsConfig
from .listener import Hooks

log = logging.getLogger("barkwatch")

INDEX_NAME = "recorded.jsonl"
KEEP_CHOICES = ("sounds", "barks", "all")
FLOOR_WINDOWS = 2400  # ten minutes of windows at a 0.25 s hop
FLOOR_MIN_WINDOWS = 40  # before this many, only the fixed bar counts
MARGIN_S = 1.0  # audio kept either side of a stretch
MAX_STRETCH_S = 30.0  # a longer stretch is cut into pieces of this length
QUEUE_BLOCKS = 4000  # ``record --keep all``: blocks waiting for the encoder (minutes of audio) before it gives up


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

    def score(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        power = np.mean(np.square(windows, dtype=np.float64), axis=1)
        level = 10.0 * np.log10(np.maximum(power, 1e-12))
        scores = np.empty(len(level))
        for i, value in enumerate(level):  # in order, so each window is judged against the floor before it
            scores[i] = 1.0 if value >= self.bar_dbfs() else 0.0
            self._levels[self._seen % FLOOR_WINDOWS] = value
            self._seen += 1
        nan = np.full(len(level), math.nan)
        return nan, nan, scores


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


class StreamRecorder(Hooks):
    """The listener's hooks for ``record --keep all``: every sample, as 16-bit FLAC pieces of ``piece_s``
    seconds, ``<out>/audio/<date>/<time>.flac``, each indexed (kind ``audio``) in ``recorded.jsonl``.

    A piece is written as ``<time>.flac.part`` and renamed when it is closed, so a listing of ``.flac`` files
    (what ``calibrate --background`` reads) never holds a half-written one. The encoder runs on a thread of its
    own; the worker only queues blocks. A write error (a full disk) stops recording (``on_full``) with the
    pieces closed before it kept; ``error`` then says what happened. The disk budget stops it the same way."""

    def __init__(self, out_dir: Path, *, max_bytes: int, piece_s: float = 600.0,
                 on_full: Callable[[], None] = lambda: None):
        self.dir = Path(out_dir)
        self.max_bytes = max_bytes
        self.piece_s = piece_s
        self.on_full = on_full
        self.counts = {"audio": 0}
        self.full = False
        self.error: str | None = None
        self.seconds = 0.0  # audio written to closed pieces by this recorder
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index = open(self.dir / INDEX_NAME, "a", encoding="utf-8")
        self._bytes = _clip_bytes(self.dir / "audio")
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._start: datetime | None = None
        self._rate = 0
        self._piece_end = 0.0
        self._writer = threading.Thread(target=self._write_loop, name="barkwatch-record", daemon=True)
        self._writer.start()

    # Listener hooks (the worker thread): only queue

    def stream_began(self, start: datetime, samplerate: int) -> None:
        self._send(("close", None, 0.0))
        self._start, self._rate, self._piece_end = start, samplerate, 0.0

    def audio(self, mono: np.ndarray, offset_s: float) -> None:
        if self.full or self._start is None:
            return
        mono = np.asarray(mono, np.float32)
        while len(mono) and not self.full:  # pieces are exactly piece_s long, whatever the block size
            if offset_s >= self._piece_end:
                self._send(("open", (self._start, self._rate), offset_s))
                self._piece_end = offset_s + self.piece_s
            take = min(len(mono), max(1, int(round((self._piece_end - offset_s) * self._rate))))
            self._send(("write", mono[:take].copy(), offset_s))
            mono, offset_s = mono[take:], offset_s + take / self._rate
        if self.used_bytes() >= self.max_bytes:
            self._stop(f"{self.dir}: the recording reached the disk budget ({self.max_bytes / 1e6:g} MB)")

    def stream_ended(self) -> None:
        self._send(("close", None, 0.0))

    def _send(self, job) -> None:
        # Never block the worker: a writer minutes behind means a disk that cannot keep up.
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._stop(f"{self.dir}: the disk cannot keep up with the recording", error=True)

    def record(self, record: dict) -> None:
        """``on_record``: nothing to do (everything is kept)."""

    def used_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._queue.put(("close", None, 0.0))
        self._queue.put(None)
        self._writer.join()
        self._index.close()

    def _stop(self, why: str, error: bool = False) -> None:
        if error and self.error is None:
            self.error = why
        if not self.full:
            self.full = True
            log.warning("%s; recording stops", why)
            self.on_full()

    # The writer thread

    def _write_loop(self) -> None:
        import soundfile as sf

        piece: sf.SoundFile | None = None
        path = part = None
        stream_start: datetime | None = None
        rate, first_s, frames = 0, 0.0, 0
        while True:
            job = self._queue.get()
            if job is None:
                return
            what, payload, offset_s = job
            try:
                if what in ("open", "close") and piece is not None:
                    piece.close()
                    part.rename(path)
                    self._bytes += path.stat().st_size
                    self._index_piece(path, stream_start + timedelta(seconds=first_s), first_s, frames / rate)
                    piece = None
                if what == "open" and not self.full:
                    (stream_start, rate), first_s, frames = payload, offset_s, 0
                    at = stream_start + timedelta(seconds=offset_s)
                    path = self.dir / "audio" / at.strftime("%Y-%m-%d") / f"{at.strftime('%H%M%S')}.flac"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    part = path.with_name(path.name + ".part")
                    piece = sf.SoundFile(str(part), "w", rate, 1, format="FLAC", subtype="PCM_16")
                elif what == "write" and piece is not None:
                    piece.write(np.clip(payload, -1.0, 1.0))
                    frames += len(payload)
            except Exception as e:  # a full disk, libsndfile's RuntimeError, anything: say so, keep draining
                if piece is not None:
                    with contextlib.suppress(Exception):
                        piece.close()
                piece = None
                self._stop(f"{part}: cannot write the recording ({getattr(e, 'strerror', None) or e})", error=True)

    def _index_piece(self, path: Path, start: datetime, first_s: float, seconds: float) -> None:
        self.counts["audio"] += 1
        self.seconds += seconds
        line = {"kind": "audio", "clip": os.path.relpath(path, self.dir),
                "start": start.astimezone().isoformat(timespec="milliseconds"),
                "end": (start + timedelta(seconds=seconds)).astimezone().isoformat(timespec="milliseconds"),
                "duration_s": round(seconds, 3), "offset_s": round(first_s, 3), "clip_starts_s_before": 0.0,
                "level_dbfs": None, "score": None, "recorded": start.strftime("%Y-%m-%d")}
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
        if isinstance(entry, dict) and isinstance(entry.get("clip"), str):
            entries.append(entry)
    return entries
