"""Scanning recordings: each file read in blocks, through the engine and the event tracker, into records.

Constant memory for any length: blocks of about a second go in, scored windows and event records come out,
and nothing else is kept. A file that fails part-way still has every event found before the failure written,
the open one included.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from .audio import AudioError, promised_seconds, unreadable
from .detector import Detector
from .engine import finite
from .events import Event, WindowScore, event_record

log = logging.getLogger("barkwatch")
Record = dict
SCORE_COLUMNS = ("file", "start_s", "end_s", "level_dbfs", "rl", "kl", "score")


@dataclass
class FileResult:
    """What scanning one file found."""

    path: Path
    duration_s: float = 0.0
    events: list[Event] = field(default_factory=list)
    windows: int = 0
    gated: int = 0  # windows the energy gate kept from the network
    error: str | None = None

    @property
    def bark_seconds(self) -> float:
        return sum(e.duration_s for e in self.events)

    @property
    def longest_s(self) -> float:
        return max((e.duration_s for e in self.events), default=0.0)


def stream_start(path: Path, duration_s: float, start: datetime | None) -> datetime:
    """When the recording began, local and timezone-aware: ``start`` if given (naive means local time), else
    the file's modification time minus its duration (recorders write the file as they go)."""
    if start is not None:
        return start.astimezone() if start.tzinfo is None else start
    return datetime.fromtimestamp(os.path.getmtime(path)).astimezone() - timedelta(seconds=duration_s)


class ScoreWriter:
    """Every window's time, level, loss terms and score as CSV (``--scores``): what the detector heard."""

    def __init__(self, stream: TextIO):
        self._writer = csv.writer(stream)
        self._writer.writerow(SCORE_COLUMNS)

    def write(self, path: Path, w: WindowScore) -> None:
        self._writer.writerow([str(path), f"{w.start_s:.3f}", f"{w.end_s:.3f}", f"{w.level_dbfs:.2f}",
                               "" if math.isnan(w.rl) else f"{w.rl:.6g}", "" if math.isnan(w.kl) else f"{w.kl:.6g}",
                               repr(float(w.score))])  # every digit: replaying the CSV gives detect's events


def cut_clip(path: Path, event: Event, clips_dir: Path, margin_s: float = 1.0) -> Path:
    """Write the event, with ``margin_s`` of audio either side, from ``path`` to a FLAC file in ``clips_dir``."""
    import soundfile as sf

    info = sf.info(str(path))
    first = max(0, int((event.start_s - margin_s) * info.samplerate))
    last = min(info.frames, int((event.end_s + margin_s) * info.samplerate))
    audio, rate = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
    audio = finite(audio)
    clips_dir.mkdir(parents=True, exist_ok=True)
    out = clips_dir / f"{path.stem}_{event.start_s:09.2f}s_{event.id}.flac"
    sf.write(str(out), audio, rate, format="FLAC")
    return out


def scan_file(path: Path, detector: Detector, *, on_record: Callable[[Record], None],
              on_window: Callable[[WindowScore], None] | None = None, start: datetime | None = None,
              block_s: float = 1.0, clips_dir: Path | None = None, progress: bool = False) -> FileResult:
    """Scan one file with ``detector``; ``on_record`` gets each ``bark_start`` and ``bark`` record as soon as
    it exists.

    With ``clips_dir``, each event is also cut to a FLAC file (one second either side) named in its record;
    a clip that cannot be written is left out with a warning, and detection goes on.

    Errors reading the file end the scan with ``FileResult.error`` set (one line naming the file); events
    found up to that point are closed and written first.
    """
    import soundfile as sf

    result = FileResult(path=path)
    if not path.is_file():
        result.error = f"{path}: no such file"
        return result
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        result.error = str(AudioError(unreadable(path, e)))
        return result
    result.duration_s = info.frames / info.samplerate if info.samplerate else 0.0
    if info.frames == 0:
        result.error = f"{path}: the file holds no audio (0 samples)"
        return result
    promised = promised_seconds(info)
    if promised is not None and promised > result.duration_s:
        log.warning("%s: cut short: its header promises %.1f s of audio, %.1f s are there; scanning those",
                    path, promised, result.duration_s)
    began = stream_start(path, result.duration_s, start)
    model_info = {"file": detector.model.path.name, "sha256": detector.model.sha256}
    engine = detector.engine(info.samplerate)
    tracker = detector.tracker()

    def emit(transitions: list[tuple[str, Event]]) -> None:
        for kind, event in transitions:
            clip = None
            if kind == "end":
                result.events.append(event)
                if clips_dir is not None:
                    try:
                        clip = str(cut_clip(path, event, clips_dir))
                    except (sf.LibsndfileError, RuntimeError, OSError) as e:
                        log.warning("%s: clip of the event at %.1f s not written (%s)", path, event.start_s, e)
            on_record(event_record(kind, event, source=str(path), stream_start=began, model=model_info,
                                   clip=clip))

    def take(windows: list[WindowScore]) -> None:
        for w in windows:
            result.windows += 1
            result.gated += math.isnan(w.rl)
            if on_window is not None:
                on_window(w)
            emit(tracker.update(w))

    bar = _bar(progress, result.duration_s, path.name)
    read_s = 0.0
    damaged = 0  # frames holding NaN or infinite samples
    try:
        blocksize = max(1, int(block_s * info.samplerate))
        for block in sf.blocks(str(path), blocksize=blocksize, dtype="float32", always_2d=True):
            damaged += int((~np.isfinite(block)).any(axis=1).sum())
            take(engine.feed(block))
            read_s += len(block) / info.samplerate
            bar.update(len(block) / info.samplerate)
        take(engine.finish())
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        result.error = str(AudioError(f"{path}: cannot read audio after {read_s:.1f} s ({e})"))
    finally:
        bar.close()
        emit(tracker.flush(at_s=read_s))  # a zero-padded last window may reach past the end
    if damaged:
        log.warning("%s: %.1f s of the audio hold NaN or infinite samples (a damaged file); heard as silence",
                    path, damaged / info.samplerate)
    return result


def _bar(progress: bool, total: float, name: str):
    from tqdm import tqdm

    return tqdm(total=round(total, 1), unit="s", desc=name, disable=None if progress else True,
                dynamic_ncols=True, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                "[{elapsed}<{remaining}, {rate_fmt}]")
