"""Listening live: a microphone (or a file played in real time) through the engine and the event tracker,
for as long as it runs, surviving the device or the sound server going away.

Three kinds of thread, and what each may do:

- the audio thread (PortAudio's callback, or the ``file:`` player) only copies blocks into the source's ring
  (``capture.py``);
- ONE worker thread (``Listener``) reads the ring and runs everything else in order: the ``Engine``, the
  ``EventTracker``, the records (``on_record``), the status lines, the outage watchdog and the reconnection;
- the main thread (the ``listen`` command) waits for SIGINT or SIGTERM and calls ``Listener.stop``.

PortAudio calls made while recovering run on a short-lived helper thread that the worker waits for: a sound
server that is frozen (stopped, not dead) blocks them until it wakes up, and the worker must still stop
within two seconds when asked.

Time: each window is timed by the audio itself, by counting samples from the stream's start, whose wall
clock time is taken when the first block arrives (its arrival less its own length). Audio the ring dropped
because the worker fell behind is replaced by as much silence, so the count stays right. After an outage a
new stream starts: fresh engine and tracker, times anchored again at its first block. Records carry that
anchor as ``stream_start``, so their ``start`` and ``end`` are real local times.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from .capture import (DEFAULT_BLOCKSIZE, DEFAULT_BUFFER_S, AudioSource, CaptureError, FilePlayer, FileReader,
                      MicrophoneSource, StreamSource, redact_url, refresh_portaudio)
from .devices import DeviceError, FileSource, InputDevice, NetworkSource, list_inputs, resolve
from ..config import AudioConfig
from ..detection.detector import Detector
from ..detection.engine import Engine
from ..detection.events import Event, EventTracker, TrackerSettings, WindowScore, event_record

log = logging.getLogger("barkwatch")
Record = dict

STALL_S = 5.0  # no audio for this long while the stream claims to run: an outage
STATUS_EVERY_S = 5.0  # -v: one status line this often
TICK_S = 0.5  # Hooks.tick comes at least this often, outages included
READ_TIMEOUT_S = 0.3  # the worker checks for stop, the watchdog and the status at least this often
STOP_BUDGET_S = 1.5  # after stop: at most this long to close the stream and score the audio in flight
RESYNC_S = 1.0  # audio time this far from the wall clock is put right (see Listener._resync)
OVERRUN_WARNING_EVERY_S = 60.0
STREAM_SAMPLERATE = 22050  # a network stream is decoded at the models' rate: ffmpeg resamples it once
STREAM_CONNECT_TIMEOUT_S = 10.0  # an open waits this long for a stream's first audio
STREAM_RESYNC_S = 5.0  # a network stream's audio comes in bursts (buffering, jitter): RESYNC_S for streams


class ListenError(Exception):
    """A listener that cannot start (bad ``--channel``, a source that cannot be opened); one line."""


# Reconnection schedule


@dataclass(frozen=True)
class Backoff:
    """Waits before reopening a lost device: ``first_s``, then each ``factor`` times the last, at most
    ``max_s``. Never zero, so a device that fails at once cannot make a busy loop."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if not (self.first_s > 0 and self.factor >= 1 and self.max_s >= self.first_s):
            raise ValueError(f"backoff {self}: need first_s > 0, factor >= 1 and max_s >= first_s")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (0 for the first after the loss)."""
        if attempt < 0:
            raise ValueError(f"attempt {attempt}: attempts count from 0")
        # Capped in the exponent, so a device missing for months never overflows a float.
        doublings = math.log(self.max_s / self.first_s, self.factor) if self.factor > 1 else 0.0
        return min(self.max_s, self.first_s * self.factor ** min(attempt, math.ceil(doublings)))

    def delays(self) -> Iterator[float]:
        """The waits, one per attempt, for ever."""
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1

    def describe(self) -> str:
        return f"after {self.first_s:g} s, then waits x{self.factor:g} up to {self.max_s:g} s"


# Sources, opened and reopened


class Opener(Protocol):
    """Opens the source the listener reads: ``open(again=False)`` the first time, ``again=True`` after an
    outage. ``name`` is what records carry as ``source``; a source that does not ``reconnects`` (a file)
    ends the listener when it ends."""

    name: str
    reconnects: bool

    def open(self, again: bool) -> AudioSource: ...

    def describe(self, source: AudioSource) -> str: ...


class MicrophoneOpener:
    """A PortAudio input device, found again by the same ``--device`` value after each outage.

    The first open uses the device ``devices.resolve`` found. Reopening resolves the value again against
    PortAudio's current list (an index is replaced by the device's name: indices change when PortAudio lists
    the devices again); when that fails, PortAudio re-enumerates its devices (``refresh_portaudio``: the
    device may have come back under a new index) and it is tried once more. PortAudio and ALSA print lines
    of their own on stderr for each failed attempt: the ``listen`` command filters them out
    (``capture.NativeStderrFilter``).
    """

    reconnects = True

    def __init__(self, device: InputDevice, spec: str, samplerate: float | None = None,
                 channels: int | None = None, blocksize: int = DEFAULT_BLOCKSIZE, buffer_s: float = DEFAULT_BUFFER_S):
        self.device = device
        self.name = device.name
        self.spec = device.name if spec.strip().lstrip("-").isdigit() else spec
        self.samplerate = samplerate
        self.channels = channels
        self.blocksize = blocksize
        self.buffer_s = buffer_s

    def open(self, again: bool) -> MicrophoneSource:
        if not again:
            return self._open(self.device.index)
        try:
            return self._open(resolve(self.spec, list_inputs()).index)
        except (CaptureError, DeviceError):
            refresh_portaudio()
        try:
            found = resolve(self.spec, list_inputs())
        except DeviceError as e:
            raise CaptureError(str(e)) from e
        return self._open(found.index)

    def _open(self, index: int) -> MicrophoneSource:
        source = MicrophoneSource(index, samplerate=self.samplerate, channels=self.channels,
                                  blocksize=self.blocksize, buffer_s=self.buffer_s)
        try:
            source.start()
        except CaptureError:
            source.stop()
            raise
        return source

    def describe(self, source: AudioSource) -> str:
        return f"'{self.name}' ({self.device.hostapi}) at {source.samplerate:,} Hz, {source.channels} channel(s)"


class FileOpener:
    """``--device file:PATH``: the recording played in real time, once; its end ends the listener. With
    ``realtime=False`` it is read as fast as the listener takes it (``FileReader``), its times still the
    audio's own."""

    reconnects = False

    def __init__(self, path: Path, blocksize: int = DEFAULT_BLOCKSIZE, buffer_s: float = DEFAULT_BUFFER_S,
                 realtime: bool = True):
        self.path = Path(path)
        self.name = str(path)
        self.blocksize = blocksize
        self.buffer_s = buffer_s
        self.realtime = realtime
        if not realtime:
            self.resync_s = math.inf  # the audio runs ahead of the wall clock on purpose

    def open(self, again: bool) -> FilePlayer | FileReader:
        if not self.realtime:
            return FileReader(self.path, blocksize=self.blocksize)
        player = FilePlayer(self.path, blocksize=self.blocksize, buffer_s=self.buffer_s)
        player.start()
        return player

    def describe(self, source: AudioSource) -> str:
        pace = "played in real time" if self.realtime else "read as fast as it is scored"
        return f"{self.path} {pace} at {source.samplerate:,} Hz, {source.channels} channel(s)"


class StreamOpener:
    """``--device rtsp://...`` (any URL ffmpeg opens): the stream decoded by ffmpeg, reopened with backoff like
    a microphone when it ends or breaks. An open succeeds once audio comes; ffmpeg giving up first (refused,
    not found, no audio stream) is a failed attempt naming ffmpeg's reason. Its name, in logs and records,
    hides any password in the URL."""

    reconnects = True
    resync_s = STREAM_RESYNC_S

    def __init__(self, url: str, samplerate: int | None = None, connect_timeout_s: float = STREAM_CONNECT_TIMEOUT_S, blocksize: int = DEFAULT_BLOCKSIZE,
                 buffer_s: float = DEFAULT_BUFFER_S):
        self.url = url
        self.name = redact_url(url)
        self.samplerate = int(samplerate or STREAM_SAMPLERATE)
        self.connect_timeout_s = connect_timeout_s
        self.blocksize = blocksize
        self.buffer_s = buffer_s

    def open(self, again: bool) -> StreamSource:
        source = StreamSource(self.url, self.samplerate, blocksize=self.blocksize,
                              buffer_s=self.buffer_s)
        source.start()
        if not source.wait_audio(self.connect_timeout_s) and source.ended:
            source.stop()
            raise CaptureError(f"{self.name}: cannot open the stream ({source.reason}); check the URL, and that "
                               "the camera or server is up and reachable from here")
        return source  # no audio yet but ffmpeg still trying: the listener's no-audio watchdog takes over

    def describe(self, source: AudioSource) -> str:
        return f"{self.name} through ffmpeg at {source.samplerate:,} Hz"


# What the listener counts


@dataclass
class Hooks:
    """What a service hangs on the worker thread, besides the records: every method runs there, between
    reads of the ring buffer, and must return quickly (hand slow work to a thread of its own).

    The defaults do nothing; ``sinks.Outputs`` is the service's."""

    def stream_began(self, start: datetime, samplerate: int) -> None:
        """A new stream's first audio arrived; ``start`` is the wall-clock time of its first sample."""

    def audio(self, mono: np.ndarray, offset_s: float) -> None:
        """Audio as it was scored (the channel chosen or the mix, at the stream's rate, silence where audio was
        lost), its first sample ``offset_s`` seconds after the stream's start."""

    def stream_ended(self) -> None:
        """The stream ended or failed; its last records have been handed out."""

    def tick(self, status: str) -> None:
        """Called at least every few tenths of a second while the worker is alive (``status``: listening,
        waiting or reconnecting), so a watchdog petted here proves the worker is not stuck."""


@dataclass
class ListenStats:
    """Counters since the listener started; read them from any thread (each is replaced, never mutated)."""

    windows: int = 0
    gated: int = 0
    events: int = 0  # events ended (``bark`` records written)
    outages: int = 0
    overruns: int = 0  # times audio was lost because a thread fell behind (PortAudio's and the ring's)
    dropped_s: float = 0.0  # audio the ring dropped (replaced by silence so that times stay right)
    audio_s: float = 0.0  # audio scored
    down_s: float = 0.0  # time without a stream, over all outages
    resynced_s: float = 0.0  # how far times were put right against the wall clock (Listener._resync)


@dataclass
class _Since:
    """What the status line reports about the windows since the last one."""

    level: float = -math.inf
    score: float = 0.0
    windows: int = 0


class _Call:
    """A PortAudio call on a helper thread, so that a frozen sound server cannot hold the worker past a stop."""

    def __init__(self, fn: Callable[[], object], name: str):
        self.result: object = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(fn,), name=name, daemon=True).start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            self.result = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting worker
            self.error = e
        finally:
            self._done.set()

    def wait(self, stop: threading.Event, grace_s: float) -> bool:
        """True once the call returned; False if ``stop`` was set and it still had not ``grace_s`` later."""
        while not self._done.wait(READ_TIMEOUT_S):
            if stop.is_set():
                return self._done.wait(grace_s)
        return True


class _Stream:
    """One uninterrupted stream: its engine, tracker and time anchor. Made at its first block."""

    def __init__(self, listener: Listener, source: AudioSource, first_frame: int, first_frames: int):
        self.source = source
        self.rate = source.samplerate
        self.channels = source.channels
        # The first sample arrived len(first block) samples before the block did.
        self.start = datetime.fromtimestamp(time.time() - first_frames / self.rate).astimezone()
        self.began = time.monotonic() - first_frames / self.rate
        self.engine = Engine(listener.model, self.rate, listener.engine_settings)
        self.tracker = EventTracker(listener.tracker_settings)
        self.next_frame = first_frame
        self.fed = 0  # frames fed to the engine, silence for dropped audio included
        self.dropped = 0

    @property
    def fed_s(self) -> float:
        return self.fed / self.rate

    def drift_s(self) -> float:
        """Audio time minus wall time since the stream began: the sound card's clock against this computer's
        (plus any audio PortAudio lost without saying how much)."""
        return self.fed_s - (time.monotonic() - self.began)


class Listener:
    """The live loop: ``start`` opens the source and starts the worker, ``stop`` asks it to finish, ``wait``
    waits for it. ``on_record`` gets each ``bark_start`` (as soon as an event is confirmed) and ``bark``
    record (when it ends), on the worker thread; ``on_status`` gets a status line every ``status_every_s``
    seconds when given.

    After ``wait``: ``error`` is a one-line message when listening ended on an error (a file that could not
    be read, a record that could not be written), else None; ``hung`` is True when a PortAudio call never
    returned (a frozen sound server) and the process should leave with ``os._exit`` after flushing, as
    PortAudio's exit handler would block too.
    """

    def __init__(self, opener: Opener, detector: Detector, *, on_record: Callable[[Record], None],
                 on_status: Callable[[str], None] | None = None, status_every_s: float = STATUS_EVERY_S,
                 stall_s: float = STALL_S, backoff: Backoff = Backoff(), hooks: Hooks | None = None):
        self.opener = opener
        self.model = model = detector.model
        self.engine_settings = detector.engine_settings
        self.tracker_settings = detector.tracker_settings
        self.compute_device = detector.device
        self.on_record = on_record
        self.on_status = on_status
        self.status_every_s = status_every_s
        self.stall_s = stall_s
        self.backoff = backoff
        self.hooks = hooks or Hooks()
        self._new_tracker_settings: TrackerSettings | None = None
        self.model_info = {"file": model.path.name, "sha256": model.sha256}
        self.stats = ListenStats()
        self.error: str | None = None
        self.hung = False
        self._stop = threading.Event()
        self._done = threading.Event()
        self._source: AudioSource | None = None
        self._thread: threading.Thread | None = None
        self._overruns_before = 0  # overruns of the streams before this one
        self._since = _Since()
        self._next_status = math.inf
        self._last_overrun_warning = -math.inf
        self._back_after = 0.0

    # The controlling thread's side

    def start(self) -> None:
        """Open the source (raises ``ListenError`` with one line if it cannot be) and start the worker."""
        try:
            source = self.opener.open(again=False)
        except CaptureError as e:
            raise ListenError(str(e)) from e
        try:
            self._check_channel(source)
        except ListenError:
            source.stop()
            raise
        self._source = source
        self._thread = threading.Thread(target=self._work, name="barkwatch listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the worker to finish (safe from a signal handler and from any thread, and more than once)."""
        self._stop.set()

    def update_tracker(self, settings: TrackerSettings) -> None:
        """New event rules (a reloaded config), taken up by the worker before its next window, open event kept
        (safe from a signal handler and from any thread)."""
        self._new_tracker_settings = settings

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker has finished (True) or ``timeout`` passes (False)."""
        return self._done.wait(timeout)

    def run(self) -> None:
        """``start``, then wait until the source ends or ``stop`` is called (from another thread); Ctrl-C in
        an interactive session stops it too."""
        self.start()
        try:
            while not self.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.wait()

    def _check_channel(self, source: AudioSource) -> None:
        channel = self.engine_settings.channel
        if channel is not None and not 0 <= channel < source.channels:
            raise ListenError(f"--channel {channel}: {self.opener.name} gives {source.channels} channel(s), "
                              f"numbered 0 to {source.channels - 1}")

    # The worker

    def _work(self) -> None:
        try:
            self._loop()
        except Exception as e:  # noqa: BLE001 - the worker must report, not vanish
            self.error = str(e) if str(e) else repr(e)
            log.debug("listen worker failed", exc_info=True)
            self._stop.set()  # so that closing the stream waits for a frozen sound server no longer than a stop
            if self._source is not None:
                self._stop_source(self._source)
        finally:
            self._done.set()

    def _loop(self) -> None:
        source = self._source
        stream: _Stream | None = None
        quiet_since = time.monotonic()  # last time audio came (or the stream opened)
        if self.status_every_s:
            self._next_status = time.monotonic() + self.status_every_s
        while True:
            if self._stop.is_set():
                self._shutdown(source, stream)
                return
            # Woken once per window, not per block: most of listen's own cost is waking up.
            need = stream.engine.frames_to_next_window() if stream is not None else 1
            first, block = source.read_indexed(timeout=READ_TIMEOUT_S, min_frames=need)
            now = time.monotonic()
            if len(block):
                quiet_since = now
                if stream is None:
                    stream = _Stream(self, source, first, len(block))
                    self._announce(stream, again=self.stats.outages > 0)
                    self.hooks.stream_began(stream.start, stream.rate)
                self._apply_settings(stream)
                self._take(stream, first, block)
                self._resync(stream, now)
                self._check_overruns(source)
            elif source.ended or now - quiet_since >= self.stall_s:
                # The stream failed, the file played out, or no audio came (a stopped sound server gives no
                # callback at all): score what is left and close the open event now, then start again.
                stalled = not source.ended
                self._end_stream(stream, source)
                if not self.opener.reconnects:
                    self._stop_source(source)
                    self.error = (f"{self.opener.name}: no audio for {self.stall_s:g} s" if stalled
                                  else getattr(source, "error", None))
                    return
                source = self._source = self._reconnect(source, f"no audio for {self.stall_s:g} s" if stalled
                                                        else _reason(source))
                if source is None:
                    return
                stream, quiet_since = None, time.monotonic()
            self._status(stream, source, down=False)
            self.hooks.tick("listening" if stream is not None else "waiting")

    def _apply_settings(self, stream: _Stream) -> None:
        settings, self._new_tracker_settings = self._new_tracker_settings, None
        if settings is not None and settings != self.tracker_settings:
            self.tracker_settings = stream.tracker.settings = settings
            log.info("event rules now: threshold %.3f, patience %d, release %g s, merge %g s",
                     settings.threshold, settings.patience, settings.release_s, settings.merge_s)

    def _announce(self, stream: _Stream, again: bool) -> None:
        if again:
            log.info("%s: back after %.1f s (outage %d); listening again since %s", self.opener.name,
                     self._back_after, self.stats.outages, stream.start.strftime("%H:%M:%S"))
        else:
            what = self.opener.describe(stream.source)
            mix = (f"channel {self.engine_settings.channel}" if self.engine_settings.channel is not None
                   else "channels mixed" if stream.channels > 1 else "mono")
            log.info("listening to %s (%s); model %s, threshold %.3f, hop %g s; stop with Ctrl-C or SIGTERM",
                     what, mix, self.model.path.name, self.tracker_settings.threshold, self.engine_settings.hop_s)

    def _take(self, stream: _Stream, first: int, block: np.ndarray) -> None:
        """Feed a block, after silence in place of any audio the ring dropped before it."""
        gap = first - stream.next_frame
        if gap > 0:
            stream.dropped += gap
            self.stats.dropped_s += gap / stream.rate
            self._feed(stream, np.zeros((gap, stream.channels), dtype=np.float32))
        self._feed(stream, block)
        stream.next_frame = first + len(block)
        self.stats.audio_s += len(block) / stream.rate

    def _feed(self, stream: _Stream, block: np.ndarray) -> None:
        mono = stream.engine.mono(block)
        # Audio first, so that a clip begun by a record in this block already holds the block.
        self.hooks.audio(mono, stream.fed_s)
        windows = stream.engine.feed(mono)
        stream.fed += len(block)
        self._windows(stream, windows)

    def _resync(self, stream: _Stream, now: float) -> None:
        """Keep the sample count within ``RESYNC_S`` of the wall clock.

        Right after a read, the stream's newest sample is about ``now``. Audio behind the clock by more than
        ``RESYNC_S`` (a network stream's opener allows more: its audio comes in bursts) means the device paused or PortAudio lost audio without counting it: as much silence goes
        in, as for audio the ring dropped. Audio ahead of the clock means the sound card's clock runs fast
        (tens of ppm, seconds a day over months): the stream's start moves earlier by as much, so record
        times stay real times.
        """
        behind = (now - stream.began) - stream.fed_s
        tolerance = getattr(self.opener, "resync_s", RESYNC_S)
        if behind > tolerance:
            frames = int(round(behind * stream.rate))
            self._feed(stream, np.zeros((frames, stream.channels), dtype=np.float32))
            self.stats.resynced_s += frames / stream.rate
            log.info("%s: %.1f s less audio came than the clock says (the device paused?): counted as silence",
                     self.opener.name, frames / stream.rate)
        elif -behind > tolerance:
            stream.began -= -behind
            stream.start -= timedelta(seconds=-behind)
            self.stats.resynced_s += -behind
            log.info("%s: %.1f s more audio came than the clock says (the sound card's clock runs fast): times "
                     "set back by as much", self.opener.name, -behind)

    def _windows(self, stream: _Stream, windows: list[WindowScore]) -> None:
        for w in windows:
            self.stats.windows += 1
            self.stats.gated += math.isnan(w.rl)
            self._since.windows += 1
            self._since.level = max(self._since.level, w.level_dbfs)
            self._since.score = max(self._since.score, w.score)
            self._emit(stream, stream.tracker.update(w))

    def _emit(self, stream: _Stream, transitions: list[tuple[str, Event]]) -> None:
        for kind, event in transitions:
            if kind == "end":
                self.stats.events += 1
            self.on_record(event_record(kind, event, source=self.opener.name, stream_start=stream.start,
                                        model=self.model_info))

    def _end_stream(self, stream: _Stream | None, source: AudioSource, deadline: float | None = None) -> None:
        """The stream ended (or is being stopped): score what is left in the ring and the last window, then
        close the open event where the audio stops. With ``deadline`` (monotonic), audio still unread then is
        left unscored, so that a stop finishes in time."""
        self._overruns_before += source.overruns
        self.stats.overruns = max(self.stats.overruns, self._overruns_before)
        if stream is None:
            return
        while deadline is None or time.monotonic() < deadline:
            first, block = source.read_indexed(timeout=0)
            if not len(block):
                break
            self._take(stream, first, block)
        self._windows(stream, stream.engine.finish())
        self._emit(stream, stream.tracker.flush(at_s=stream.fed_s))
        self.hooks.stream_ended()

    def _stop_source(self, source: AudioSource) -> bool:
        """Stop the source on a helper thread; False if a stop was asked for and it never returned."""
        call = _Call(source.stop, "barkwatch stop stream")
        if call.wait(self._stop, grace_s=0.5):
            return True
        self.hung = True
        return False

    def _shutdown(self, source: AudioSource, stream: _Stream | None) -> None:
        deadline = time.monotonic() + STOP_BUDGET_S
        self._stop_source(source)
        self._end_stream(stream, source, deadline=deadline)

    def _check_overruns(self, source: AudioSource) -> None:
        total = self._overruns_before + source.overruns
        if total > self.stats.overruns:
            self.stats.overruns = total
            now = time.monotonic()
            if now - self._last_overrun_warning >= OVERRUN_WARNING_EVERY_S:
                self._last_overrun_warning = now
                log.warning("%s: audio was lost because the detector fell behind (%d overrun(s) so far, %.1f s "
                            "replaced by silence): the machine is too busy", self.opener.name, total,
                            self.stats.dropped_s)

    def _reconnect(self, old: AudioSource, reason: str) -> AudioSource | None:
        """One outage: log it, close the old stream, and reopen with backoff until the device is back (the new
        source) or a stop is asked for (None). The old stream's events are already closed."""
        self.stats.outages += 1
        n = self.stats.outages
        went = time.monotonic()
        log.warning("%s: lost (%s); any open event was closed; reopening it %s (outage %d)",
                    self.opener.name, reason, self.backoff.describe(), n)
        # A frozen sound server holds this until it wakes up (or a stop is asked for): nothing to do meanwhile.
        if not self._stop_source(old):
            return None
        last_error = ""
        for delay in self.backoff.delays():
            if self._pause(delay, went):
                return None
            call = _Call(lambda: self.opener.open(again=True), "barkwatch reopen")
            if not call.wait(self._stop, grace_s=0.5):
                self.hung = True
                return None
            if call.error is None:
                source = call.result
                try:
                    self._check_channel(source)
                except ListenError as e:  # a different device under the same name: keep waiting
                    self._stop_source(source)
                    last_error = str(e)
                    continue
                self._back_after = time.monotonic() - went
                self.stats.down_s += self._back_after
                if self._stop.is_set():
                    self._stop_source(source)
                    return None
                return source
            if not isinstance(call.error, (CaptureError, DeviceError)):
                log.debug("reopening failed", exc_info=call.error)
            message = str(call.error)
            if message != last_error:
                log.debug("%s: still not back: %s", self.opener.name, message)
                last_error = message
        return None  # pragma: no cover - delays() never ends

    def _pause(self, seconds: float, went: float) -> bool:
        """Wait ``seconds`` between attempts, still writing status lines; True if a stop was asked for."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            # Short waits: the hooks' tick (a watchdog) must keep coming through a 30 s backoff.
            if self._stop.wait(min(left, TICK_S, max(self._next_status - time.monotonic(), 0.01))):
                self.stats.down_s += time.monotonic() - went
                return True
            self._status(None, None, down=True, went=went)
            self.hooks.tick("reconnecting")
        return self._stop.is_set()

    def _status(self, stream: _Stream | None, source: AudioSource | None, down: bool, went: float = 0.0) -> None:
        if self.on_status is None or time.monotonic() < self._next_status:
            return
        self._next_status = time.monotonic() + self.status_every_s
        since, self._since = self._since, _Since()
        s = self.stats
        clock = datetime.now().astimezone().strftime("%H:%M:%S")
        if down:
            state = f"down for {time.monotonic() - went:.0f} s"
        elif stream is None:
            state = "waiting for audio"
        else:
            state = (f"level {since.level:6.1f} dBFS, max score {since.score:.2f}"
                     if since.windows else "no windows")
            if source is not None:
                s.overruns = max(s.overruns, self._overruns_before + source.overruns)
        drift = f", drift {stream.drift_s():+.2f} s" if stream is not None and not down else ""
        self.on_status(f"{clock}  {state}; {s.events} event(s), overruns {s.overruns}, outages {s.outages}{drift}")


def _reason(source: AudioSource) -> str:
    """Why a source ended, for the outage line: a stream's own words (ffmpeg's last line), else in general."""
    reason = getattr(source, "reason", None)
    return f"the stream ended ({reason})" if reason else "the stream failed"


def opener_for(source: InputDevice | FileSource | NetworkSource, audio: AudioConfig,
               realtime: bool = True) -> Opener:
    """The opener for a resolved ``--device``: a file played in real time (or, with ``realtime=False``, read
    as fast as it is scored), a network stream, or a microphone opened as ``audio`` (the configuration's
    ``audio:`` section) says."""
    if isinstance(source, FileSource):
        return FileOpener(source.path, realtime=realtime)
    if isinstance(source, NetworkSource):
        return StreamOpener(source.url, samplerate=audio.samplerate)
    channel = audio.channel
    # At most 2 channels are opened unless a later one is asked for.
    return MicrophoneOpener(source, audio.device, samplerate=audio.samplerate,
                            channels=channel + 1 if channel is not None and channel >= 2 else None)
