"""Audio clips of bark events for a listening service, from a rolling history of the stream, written by a
thread of their own and kept within a size and age quota.

``ClipRecorder`` runs beside the listener: ``feed`` (every block, on the worker thread) only copies samples;
``start`` and ``end`` (on the ``bark_start`` and ``bark`` records) only mark times. Disk I/O happens on the
recorder's writer thread, so a slow card or a full disk never delays detection, and the encoder runs in a
child process of its own (``python -m barkwatch.live.clips``), so an encoder that crashes (libsndfile's
Vorbis encoder has segfaulted on long clips) loses that clip, never the listening process. Clips go to
``<clips_dir>/<YYYY-MM-DD>/<HHMMSS>_<id>.<flac|ogg>``, from the event's local start.
"""

from __future__ import annotations

import io
import logging
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..config import ClipsConfig
from ..files import write_atomic

log = logging.getLogger(__name__)

FORMATS = {"flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS")}  # config name: libsndfile format, subtype
CLIP_SUFFIXES = (".flac", ".ogg")  # what the quota counts and deletes, whatever the format now
MB = 1_000_000  # max_total_mb counts decimal megabytes
MAX_CLIP_S = 120.0  # longer events get the first this-many seconds of audio
HISTORY_MARGIN_S = 30.0  # history kept beyond the pre-roll: a record comes a window or more after its start
QUEUE_MAX = 8  # clips waiting for the writer (a hung disk); past this a clip is skipped, so memory stays bounded
STALE_PART_S = 3600.0  # a .part file this old was left by a crash
ENCODE_TIMEOUT_S = 300.0  # a hung encoder is killed after this; two minutes of audio encode in about a second
ENCODER = (sys.executable, "-m", "barkwatch.live.clips")  # + FORMAT SAMPLERATE: float32 in, the file out
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def clip_path(clips_dir: str | os.PathLike, record: dict, fmt: str) -> Path:
    """Where the clip of ``record``'s event goes: ``<clips_dir>/<YYYY-MM-DD>/<HHMMSS>_<id>.<fmt>``, from the
    local wall-clock time of its ``start`` (in the record's own UTC offset)."""
    start = datetime.fromisoformat(record["start"])
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", str(record["id"]))  # ids are hex; never a path separator
    return Path(clips_dir) / start.strftime("%Y-%m-%d") / f"{start.strftime('%H%M%S')}_{safe_id}.{fmt}"


def encode(audio: np.ndarray, samplerate: int, fmt: str) -> bytes:
    """Mono float32 audio as a FLAC (16-bit) or OGG Vorbis file's bytes, samples clipped to [-1, 1].

    Written a second at a time: libsndfile 1.2.2's Vorbis encoder crashes the process (a segmentation fault)
    when a long clip (45 s at 48 kHz, 120 s at 22,050 Hz) is handed to it in one call."""
    out = io.BytesIO()
    fmt_name, subtype = FORMATS[fmt]
    with sf.SoundFile(out, "w", samplerate, 1, format=fmt_name, subtype=subtype) as f:
        for first in range(0, len(audio), samplerate):
            f.write(np.clip(audio[first : first + samplerate], -1.0, 1.0))
    return out.getvalue()


class EncoderError(Exception):
    """The encoder process failed or crashed; the message says how."""


def encode_in_child(audio: np.ndarray, samplerate: int, fmt: str, encoder: tuple[str, ...] = ENCODER,
                    timeout_s: float = ENCODE_TIMEOUT_S) -> bytes:
    """``encode`` in a child process (``encoder FORMAT SAMPLERATE``: little-endian float32 samples on its
    stdin, the file's bytes on its stdout), so that a crash in a native encoder ends that process only."""
    command = [*encoder, fmt, str(int(samplerate))]
    try:
        done = subprocess.run(command, input=np.asarray(audio, "<f4").tobytes(), capture_output=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise EncoderError(f"the {fmt} encoder took more than {timeout_s:g} s and was stopped") from None
    if done.returncode < 0:
        try:
            how = signal.Signals(-done.returncode).name
        except ValueError:
            how = f"signal {-done.returncode}"
        raise EncoderError(f"the {fmt} encoder crashed ({how})")
    if done.returncode != 0 or not done.stdout:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise EncoderError(f"the {fmt} encoder failed (exit {done.returncode}"
                           + (f": {lines[-1]}" if lines else "") + ")")
    return done.stdout


def _encoder_main(argv: list[str]) -> int:
    """The child's side of ``encode_in_child``."""
    if len(argv) != 2 or argv[0] not in FORMATS or not argv[1].isdigit():
        print(f"usage: python -m barkwatch.live.clips {{{'|'.join(FORMATS)}}} SAMPLERATE < float32 samples",
              file=sys.stderr)
        return 2
    audio = np.frombuffer(sys.stdin.buffer.read(), "<f4")
    sys.stdout.buffer.write(encode(audio, int(argv[1]), argv[0]))
    sys.stdout.buffer.flush()
    return 0


@dataclass(frozen=True)
class ClipStats:
    """Counters since the recorder started."""

    written: int = 0
    skipped: int = 0  # clips not written: disk errors, an encoder error, or the writer too far behind
    deleted: int = 0  # clips deleted by the quota


@dataclass
class _Clip:
    """A clip being gathered: samples ``[begin, until)`` of the stream, ``until`` its end once known, else the
    length cap."""

    path: Path
    begin: int
    until: int
    next: int  # the stream sample the next gathered one is
    chunks: list[np.ndarray] = field(default_factory=list)

    def take(self, first: int, samples: np.ndarray) -> None:
        """Keep the part of ``samples`` (the first at stream sample ``first``) that the clip still lacks."""
        lo, hi = max(first, self.next), min(first + len(samples), self.until)
        if hi <= lo:
            return
        if lo > self.next:  # audio missing before this block: silence, so later audio keeps its time
            self.chunks.append(np.zeros(lo - self.next, np.float32))
        self.chunks.append(samples[lo - first:hi - first].copy())  # the caller may reuse its buffer
        self.next = hi

    @property
    def complete(self) -> bool:
        return self.next >= self.until


@dataclass(frozen=True)
class _Job:
    path: Path
    chunks: list[np.ndarray]
    frames: int


_ENFORCE = object()  # a queue item: apply the quota
_STOP = object()  # a queue item: the writer ends


class ClipRecorder:
    """Clips of bark events from a stream's audio, with ``pre_roll_s`` before and ``post_roll_s`` after each.

    Call, for one stream (times in seconds from its start, as the records' offsets):

    - ``feed(block, t_s)`` with all the audio, in order; cheap (copies only), for the audio thread;
    - ``start(record)`` on a ``bark_start`` record, after the audio up to its confirmation was fed: the clip
      begins ``pre_roll_s`` before the event (less if the stream is younger, or the record came later than the
      history's ``HISTORY_MARGIN_S`` allows); returns the path the clip will have, for the ``bark`` record;
    - ``end(record)`` on its ``bark`` record: the clip takes audio up to ``post_roll_s`` after the event's end,
      then goes to the writer. Clips hold at most ``max_clip_s`` of audio (the first part of a longer event);
      a clip that reaches it goes to the writer at once;
    - ``flush()`` when the stream ends: unfinished clips are written with the audio there is;
    - ``close()`` at the end: flush, and wait for the writer.

    With ``wait_for_writer`` a clip whose turn has not come waits for the writer (``record --fast``: audio
    read from a file at full speed outruns the encoder, and no microphone is waiting) instead of being skipped.

    The returned path may never exist: a clip is skipped on a disk error (one warning while errors last, and an
    info line once clips are written again) and the quota deletes old ones. The quota is applied by the writer
    when the recorder starts and after each clip: clips older than ``max_age_days`` (by file time; 0: no
    limit), then the oldest until all ``.flac``/``.ogg`` files of the day folders total at most
    ``max_total_mb``, a clip just written included; emptied day folders are removed.
    """

    def __init__(self, clips_dir: str | os.PathLike, settings: ClipsConfig, samplerate: int,
                 now: Callable[[], float] = time.time, *, max_clip_s: float = MAX_CLIP_S,
                 history_margin_s: float = HISTORY_MARGIN_S, encoder: tuple[str, ...] = ENCODER,
                 wait_for_writer: bool = False):
        if settings.format not in FORMATS:
            raise ValueError(f"clips.format must be {' or '.join(FORMATS)}, got {settings.format!r}")
        for name in ("pre_roll_s", "post_roll_s", "max_age_days"):
            if not getattr(settings, name) >= 0:
                raise ValueError(f"clips.{name} must be >= 0, got {getattr(settings, name)}")
        if not settings.max_total_mb > 0:
            raise ValueError(f"clips.max_total_mb must be > 0, got {settings.max_total_mb} "
                             "(clips.enabled: false keeps no clips)")
        if not samplerate > 0 or not max_clip_s > 0:
            raise ValueError(f"samplerate and max_clip_s must be > 0, got {samplerate} and {max_clip_s}")
        self.dir = Path(clips_dir)
        self.settings = settings
        self.samplerate = int(samplerate)
        self._now = now
        self._encoder = tuple(encoder)
        self._wait_for_writer = wait_for_writer
        self._max_clip = int(round(max_clip_s * self.samplerate))
        self._ring = np.zeros(math.ceil((settings.pre_roll_s + history_margin_s) * self.samplerate),
                              np.float32)
        self._first: int | None = None  # stream sample of the first sample fed
        self._end: int | None = None  # stream sample after the last one fed
        self._clips: dict[str, _Clip] = {}  # by event id, in the order they began
        self._behind = False  # the writer's queue was full (warned once)
        self._stats = ClipStats()
        self._stats_lock = threading.Lock()
        self._usage = (0, 0)
        self._failing = 0  # clips skipped since the writer last succeeded (0: all is well)
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_MAX)
        self._closed = False
        self._queue.put_nowait(_ENFORCE)
        self._writer = threading.Thread(target=self._write_loop, name="barkwatch-clips", daemon=True)
        self._writer.start()

    @property
    def stats(self) -> ClipStats:
        """Clips written, skipped and deleted so far (a snapshot, safe to read from any thread)."""
        return self._stats

    def usage(self) -> tuple[int, int]:
        """(files, bytes) of the clips under ``clips_dir`` as of the writer's last quota pass (cheap: no disk
        access, for a status display)."""
        return self._usage

    # The audio thread

    def feed(self, block: np.ndarray, t_s: float) -> None:
        """Mono float32 samples, the first at ``t_s`` seconds into the stream. A gap since the last block is
        taken as silence, audio that overlaps what was fed is dropped."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 2 and block.shape[1] == 1:
            block = block[:, 0]
        if block.ndim != 1:
            raise ValueError(f"feed takes mono audio (n,) or (n, 1), got shape {block.shape}")
        first = int(round(t_s * self.samplerate))
        if self._end is None:
            self._first = self._end = first
        if first < self._end:
            block, first = block[self._end - first:], self._end
        elif first > self._end:  # clips fill their own part of the gap
            gap = min(first - self._end, len(self._ring))
            self._remember(first - gap, np.zeros(gap, np.float32))
        if len(block):
            self._remember(first, block)
        for event_id, clip in list(self._clips.items()):
            clip.take(first, block)
            if clip.complete:
                self._finish(event_id)

    def start(self, record: dict) -> Path:
        """Begin the clip of a ``bark_start`` record's event; returns the path it will be written to."""
        event_id = str(record["id"])
        path = clip_path(self.dir, record, self.settings.format)
        if event_id in self._clips or self._closed:
            return path
        begin = max(0, int(round((record["offset_s"] - self.settings.pre_roll_s) * self.samplerate)))
        if self._end is not None and begin < self._end:  # from the history, as far as it still reaches
            begin = max(begin, self._first, self._end - len(self._ring))
        clip = _Clip(path, begin=begin, until=begin + self._max_clip, next=begin)
        self._clips[event_id] = clip
        if self._end is not None and begin < self._end:
            clip.take(begin, self._recall(begin, min(self._end, clip.until)))
        if clip.complete:
            self._finish(event_id)
        return path

    def end(self, record: dict) -> None:
        """The event of a ``bark`` record ended: its clip takes audio up to ``post_roll_s`` after the end, then
        is written. A record whose clip was never started (or is already written) is ignored."""
        clip = self._clips.get(str(record["id"]))
        if clip is None:
            return
        stop = int(round((record["end_offset_s"] + self.settings.post_roll_s) * self.samplerate))
        clip.until = max(clip.begin, min(stop, clip.until))
        if clip.complete:
            self._finish(str(record["id"]))

    def flush(self) -> None:
        """The stream ended: every unfinished clip goes to the writer with the audio it has."""
        for event_id in list(self._clips):
            self._finish(event_id)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, then wait up to ``timeout`` seconds (None: as long as it takes) for the writer to finish;
        False if it had not (with a warning, unless ``timeout`` is 0: the writer then finishes in the
        background, e.g. when a new stream replaces this recorder on the audio thread; it is a daemon thread,
        so clips still queued when the program exits are lost). Later ``start`` calls only return the path."""
        if not self._closed:
            self.flush()
            self._closed = True
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:  # the writer is busy with a full queue: stop it from a helper, never block here
                threading.Thread(target=self._queue.put, args=(_STOP,), daemon=True).start()
        self._writer.join(timeout)
        if self._writer.is_alive() and timeout != 0:
            log.warning("%s: clips still being written after %g s; the rest are lost if the program ends now",
                        self.dir, timeout)
            return False
        return True

    def _remember(self, first: int, samples: np.ndarray) -> None:
        """Put samples into the history ring; position ``i % len(ring)`` holds stream sample ``i``."""
        n = len(self._ring)
        if len(samples) > n:
            first, samples = first + len(samples) - n, samples[-n:]
        at = first % n
        head = min(len(samples), n - at)
        self._ring[at:at + head] = samples[:head]
        self._ring[:len(samples) - head] = samples[head:]
        self._end = first + len(samples)

    def _recall(self, lo: int, hi: int) -> np.ndarray:
        """Stream samples ``[lo, hi)`` from the ring (they must still be in it)."""
        n, count = len(self._ring), hi - lo
        at = lo % n
        head = min(count, n - at)
        return np.concatenate((self._ring[at:at + head], self._ring[:count - head]))

    def _finish(self, event_id: str) -> None:
        clip = self._clips.pop(event_id)
        frames = min(clip.until, clip.next) - clip.begin
        try:
            self._queue.put(_Job(clip.path, clip.chunks, frames), block=self._wait_for_writer)
        except queue.Full:
            self._count(skipped=1)
            if not self._behind:
                log.warning("%s: clip skipped: %d clips wait for the writer (the disk is too slow?)", clip.path,
                            QUEUE_MAX)
            self._behind = True
        else:
            self._behind = False

    # The writer thread

    def _write_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            try:
                if job is not _ENFORCE:
                    self._write(job)
                self._enforce()
            except Exception as e:  # noqa: BLE001 - the writer must outlive any one clip
                log.error("%s: unexpected error in the clip writer (%s: %s); it goes on with the next clip",
                          self.dir, type(e).__name__, e, exc_info=log.isEnabledFor(logging.DEBUG))

    def _write(self, job: _Job) -> None:
        if job.frames <= 0:
            return
        audio = np.concatenate(job.chunks)[:job.frames]
        try:
            data = encode_in_child(audio, self.samplerate, self.settings.format, self._encoder)
        except (EncoderError, OSError) as e:  # OSError: the child could not be started (out of memory?)
            self._count(skipped=1)
            log.warning("%s: clip not written: %s; listening goes on", job.path, e)
            return
        try:
            write_atomic(job.path, data)
        except OSError as e:
            self._count(skipped=1)
            if not self._failing:
                reason = e.strerror or str(e)
                log.warning("%s: clip not written (%s); clips are skipped until they can be written (free space "
                            "in %s?)", job.path, reason, self.dir)
            self._failing += 1
            return
        self._count(written=1)
        if self._failing:
            log.info("%s: clips are written again (%d skipped meanwhile)", self.dir, self._failing)
            self._failing = 0

    def _enforce(self) -> None:
        """The quota: clips past ``max_age_days``, then the oldest past ``max_total_mb``; empty day folders."""
        clips, days = self._scan()
        doomed: list[tuple[float, Path, int]] = []
        if self.settings.max_age_days > 0:
            cutoff = self._now() - self.settings.max_age_days * 86400
            doomed = [c for c in clips if c[0] < cutoff]
            clips = [c for c in clips if c[0] >= cutoff]
        total = sum(size for _, _, size in clips)
        limit = self.settings.max_total_mb * MB
        while clips and total > limit:  # clips is oldest first
            doomed.append(clips.pop(0))
            total -= doomed[-1][2]
        deleted, kept = 0, len(clips)
        for _, path, size in doomed:
            try:
                path.unlink()
                deleted += 1
            except FileNotFoundError:
                pass
            except OSError as e:
                kept, total = kept + 1, total + size
                log.warning("%s: cannot delete this old clip (%s); delete it by hand", path, e.strerror or e)
        for day in days:
            try:
                day.rmdir()  # only succeeds when empty
            except OSError:
                pass
        self._usage = (kept, total)
        if deleted:  # every clip, once the quota is reached: debug, not info
            self._count(deleted=deleted)
            log.debug("%s: deleted %d old clip(s) (clips.max_total_mb %g, clips.max_age_days %g)", self.dir,
                      deleted, self.settings.max_total_mb, self.settings.max_age_days)

    def _scan(self) -> tuple[list[tuple[float, Path, int]], list[Path]]:
        """(mtime, path, size) of every clip in the day folders, oldest first; the day folders. Part files
        left by a crash are removed on the way."""
        clips, days = [], []
        try:
            folders = [p for p in self.dir.iterdir() if _DAY.fullmatch(p.name) and p.is_dir()]
        except OSError:  # not there yet, or unreadable: the next write says so
            return [], []
        now = self._now()
        for day in folders:
            days.append(day)
            try:
                entries = list(os.scandir(day))
            except OSError:
                continue
            for entry in entries:
                try:
                    st = entry.stat()
                except OSError:
                    continue
                if entry.name.endswith(".part") and now - st.st_mtime > STALE_PART_S:
                    Path(entry.path).unlink(missing_ok=True)
                elif entry.name.endswith(CLIP_SUFFIXES) and not entry.name.startswith(".") and entry.is_file():
                    clips.append((st.st_mtime, Path(entry.path), st.st_size))
        clips.sort()
        return clips, days

    def _count(self, **changes: int) -> None:
        with self._stats_lock:
            s = self._stats
            self._stats = replace(s, **{k: getattr(s, k) + v for k, v in changes.items()})


if __name__ == "__main__":
    sys.exit(_encoder_main(sys.argv[1:]))
