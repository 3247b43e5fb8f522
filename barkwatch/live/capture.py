"""Live audio in: a microphone (PortAudio through sounddevice), a network stream (decoded by an ffmpeg child
process) or a file played in real time, into a ring.

Two threads meet here. The producer, PortAudio's callback thread for a microphone, a reader thread for a
stream or a player thread for a file, only copies blocks into a ``RingBuffer``; the consumer (the engine's
loop) takes them out with ``read``. The producer never waits on the consumer: when the consumer falls behind by more than the ring
holds, the oldest audio is dropped and counted, because a live detector wants what is happening now.

No torch here, and sounddevice is imported only when a microphone is opened, so files play without PortAudio.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np

READ_BLOCKS = 16  # blocks the file player reads from disk at once
DEFAULT_BLOCKSIZE = 1024  # frames per callback: 23 ms at 44,100 Hz, 64 ms at 16,000 Hz
DEFAULT_BUFFER_S = 10.0  # how far the consumer may fall behind before audio is dropped


class CaptureError(Exception):
    """A capture device or file that cannot be opened; the message is one line that says what to do."""


class RingBuffer:
    """Preallocated float32 storage of ``capacity_frames`` x ``channels`` for one writer and one reader.

    ``write`` (the producer) copies a block in and never blocks beyond a short lock; when the reader is more
    than ``capacity_frames`` behind, the oldest frames are dropped (``dropped_frames``, and ``overruns``
    counts the writes that dropped any). ``read`` (the consumer) returns the frames not yet read, oldest
    first, waiting for some if there are none. ``close`` ends the stream: ``read`` then returns what is left
    and after that an empty array at once.
    """

    def __init__(self, capacity_frames: int, channels: int):
        if capacity_frames < 1 or channels < 1:
            raise ValueError(f"ring of {capacity_frames} frames x {channels} channels: both must be at least 1")
        self.capacity = capacity_frames
        self.channels = channels
        self._data = np.zeros((capacity_frames, channels), dtype=np.float32)
        # Absolute frame counts since creation; frame i lives at row i % capacity.
        self._written = 0
        self._read = 0
        self._dropped = 0
        self._overruns = 0
        self._closed = False
        self._ready = threading.Condition(threading.Lock())
        # Unread frames the waiting reader asked for (a ring has one reader): a write wakes it only once they
        # are there, so a worker that wants a window's worth sleeps through the blocks in between (each wake-up
        # costs CPU and the GIL).
        self._wanted = 1

    @property
    def frames_written(self) -> int:
        """Frames given to ``write`` so far, dropped ones included."""
        return self._written

    @property
    def dropped_frames(self) -> int:
        """Frames overwritten (or never stored) because the reader was more than the capacity behind."""
        return self._dropped

    @property
    def overruns(self) -> int:
        """Writes that had to drop frames."""
        return self._overruns

    @property
    def available(self) -> int:
        """Frames written and not yet read."""
        return self._written - self._read

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, block: np.ndarray) -> None:
        """Copy ``block`` (``[frames, channels]``, or ``[frames]`` for one channel) in after the newest frames.

        Called from the audio callback: it allocates no sample storage (numpy views only) and holds the lock
        only for the copy of one block, microseconds; the reader's copy under the same lock is what is unread,
        a few blocks when it keeps up.
        """
        if block.ndim == 1:
            block = block[:, np.newaxis]
        if block.shape[1] != self.channels:  # numpy would broadcast one channel into all of them
            raise ValueError(f"block of {block.shape[1]} channels written to a ring of {self.channels}")
        n = len(block)
        if n == 0:
            return
        if n > self.capacity:  # only the newest capacity frames can be kept
            block = block[n - self.capacity:]
        with self._ready:
            if self._closed:
                return
            start = self._written + (n - len(block))
            first = start % self.capacity
            split = min(len(block), self.capacity - first)
            self._data[first:first + split] = block[:split]
            self._data[:len(block) - split] = block[split:]
            self._written += n
            behind = self._written - self._read - self.capacity
            if behind > 0:
                self._read += behind
                self._dropped += behind
                self._overruns += 1
            if self._written - self._read >= self._wanted:
                self._ready.notify_all()

    def read(self, max_frames: int | None = None, timeout: float | None = None) -> np.ndarray:
        """The unread frames, oldest first, at most ``max_frames``, as a new ``[frames, channels]`` array.

        With none unread, waits up to ``timeout`` seconds (``None``: until some arrive or the ring is closed)
        and returns an empty ``[0, channels]`` array if none came.
        """
        return self.read_indexed(max_frames, timeout)[1]

    def read_indexed(self, max_frames: int | None = None, timeout: float | None = None,
                     min_frames: int = 1) -> tuple[int, np.ndarray]:
        """``read``, with the number of the first frame returned (frames count from 0 at the first ``write``).

        The number jumps past frames that were dropped, so a reader that counts samples to tell the time
        knows where audio is missing and how much. With ``min_frames``, waits (up to ``timeout``) until that
        many are unread, and then returns what there is: a reader that needs a whole window wakes once per
        window instead of once per block.
        """
        with self._ready:
            wanted = min(max(min_frames, 1), self.capacity)  # more can never be unread at once
            if self._written - self._read < wanted and not self._closed:
                self._wanted = wanted
                try:
                    self._ready.wait_for(lambda: self._written - self._read >= wanted or self._closed, timeout)
                finally:
                    self._wanted = 1
            n = self._written - self._read
            if max_frames is not None:
                n = min(n, max(max_frames, 0))
            first = self._read % self.capacity
            split = min(n, self.capacity - first)
            out = np.empty((n, self.channels), dtype=np.float32)
            out[:split] = self._data[first:first + split]
            out[split:] = self._data[:n - split]
            first_frame = self._read
            self._read += n
            return first_frame, out

    def close(self) -> None:
        """No more frames will come: wake a waiting reader; later writes are ignored."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class AudioSource(Protocol):
    """What the listening loop reads from: a microphone or a file played in real time.

    ``read`` returns ``[frames, channels]`` float32 blocks in [-1, 1] at ``samplerate``, an empty array when
    ``timeout`` passes with nothing new, and, once ``ended``, what is left and then empty arrays at once.
    ``overruns`` counts the times audio was lost because a thread fell behind. ``read_indexed`` also returns
    the number of the block's first frame since ``start``, which skips what was lost.
    """

    @property
    def samplerate(self) -> int: ...

    @property
    def channels(self) -> int: ...

    @property
    def overruns(self) -> int: ...

    @property
    def ended(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def read(self, timeout: float | None = None) -> np.ndarray: ...

    def read_indexed(self, timeout: float | None = None, min_frames: int = 1) -> tuple[int, np.ndarray]: ...


class _RingSource:
    """What every source here does through its ring: ``read``, ``read_indexed``, ``ended`` (the ring is
    closed), and the counts of audio it dropped."""

    _ring: RingBuffer

    @property
    def overruns(self) -> int:
        return self._ring.overruns

    @property
    def dropped_frames(self) -> int:
        """Frames the ring dropped because the reader fell behind."""
        return self._ring.dropped_frames

    @property
    def ended(self) -> bool:
        return self._ring.closed

    def read(self, timeout: float | None = None) -> np.ndarray:
        return self._ring.read(timeout=timeout)

    def read_indexed(self, timeout: float | None = None, min_frames: int = 1) -> tuple[int, np.ndarray]:
        return self._ring.read_indexed(timeout=timeout, min_frames=min_frames)


class MicrophoneSource(_RingSource):
    """A PortAudio input stream whose callback copies each block into a ring, and nothing else.

    Opened on construction (like ``sounddevice.InputStream``), at the device's default rate unless
    ``samplerate`` is given, with the device's input channels (at most 2: ALSA's ``default`` and ``pulse``
    devices report 32) unless ``channels`` is given; ``start`` starts it. ``device`` is anything
    sounddevice accepts: a PortAudio index or a name (``devices.resolve`` finds one from ``--device``).

    When the stream ends without ``stop`` (the device was unplugged, the sound server died), ``failed`` is
    set and the ring is closed, so a waiting ``read`` returns at once. A stream that failed stays failed:
    open a new ``MicrophoneSource`` to try again. PortAudio knows only the devices it listed when
    sounddevice was imported (or when ``refresh_portaudio`` last ran), so a device that comes back under a
    new index or name needs a refresh first.
    """

    def __init__(self, device: int | str | None, samplerate: float | None = None, channels: int | None = None,
                 blocksize: int = DEFAULT_BLOCKSIZE, buffer_s: float = DEFAULT_BUFFER_S):
        import sounddevice as sd

        self.device = device
        self._stopping = threading.Event()
        self._failed = threading.Event()
        self._input_overflows = 0
        try:
            info = sd.query_devices(device, "input")
            rate = float(samplerate or info["default_samplerate"])
            channels = channels or min(int(info["max_input_channels"]), 2)
            self._ring = RingBuffer(max(int(rate * buffer_s), blocksize), channels)
            self._stream = sd.InputStream(device=device, samplerate=rate, channels=channels, dtype="float32",
                                          blocksize=blocksize, callback=self._callback,
                                          finished_callback=self._finished)
        except (sd.PortAudioError, ValueError) as e:  # ValueError: no such device, or not an input
            raise CaptureError(f"cannot open input device {device!r} ({_one_line(e)}): check that it is connected, "
                               "that 'barkwatch devices' lists it, and that it takes the rate and channels asked for"
                               ) from e

    @property
    def samplerate(self) -> int:
        return int(self._stream.samplerate)

    @property
    def channels(self) -> int:
        return self._ring.channels

    @property
    def input_overflows(self) -> int:
        """Callbacks in which PortAudio reported lost input (the callback itself ran late)."""
        return self._input_overflows

    @property
    def overruns(self) -> int:
        """Input overflows reported by PortAudio plus writes into the ring that dropped audio."""
        return self._input_overflows + self._ring.overruns

    @property
    def latency_s(self) -> float:
        """PortAudio's input latency estimate for the open stream, in seconds."""
        return float(self._stream.latency)

    @property
    def failed(self) -> bool:
        """The stream ended without ``stop``: the device or the sound server went away."""
        return self._failed.is_set()

    def start(self) -> None:
        import sounddevice as sd

        try:
            self._stream.start()
        except sd.PortAudioError as e:
            raise CaptureError(f"cannot start input device {self.device!r} ({_one_line(e)}): check that it is "
                               "connected and that 'barkwatch devices' lists it") from e

    def stop(self) -> None:
        """Stop and close the stream; what was captured stays readable. Safe after a failure and twice."""
        self._stopping.set()
        # abort, not stop: stop would wait for queued buffers that a live detector does not need. Both ignore
        # PortAudio's errors (a stream that died with its device, or one already closed).
        self._stream.abort()
        self._stream.close()
        self._ring.close()

    def wait_failed(self, timeout: float | None = None) -> bool:
        """Block until the stream fails (True) or ``timeout`` passes (False)."""
        return self._failed.wait(timeout)

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        # PortAudio's thread: copy and count, nothing that can block or allocate (no prints, no logging).
        if status.input_overflow:
            self._input_overflows += 1
        self._ring.write(indata)

    def _finished(self) -> None:
        if not self._stopping.is_set():
            self._failed.set()
        self._ring.close()


class _RecordingFile:
    """What the two file sources share: the file opened (a one-line ``CaptureError`` if it cannot be read), its
    rate and channels."""

    def _open(self, path: Path | str, blocksize: int) -> None:
        import soundfile as sf

        self.path = Path(path)
        self.blocksize = blocksize
        try:
            self._file = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            from ..detection.audio import unreadable

            raise CaptureError(unreadable(self.path, e)) from e

    @property
    def samplerate(self) -> int:
        return int(self._file.samplerate)

    @property
    def channels(self) -> int:
        return int(self._file.channels)


class FilePlayer(_RingSource, _RecordingFile):
    """A recording played in real time (``--device file:PATH``): it behaves like a microphone.

    A thread reads ``path`` in blocks of ``blocksize`` frames and writes each into the ring when its last
    frame is due by the monotonic clock since ``start``, as a microphone delivers a block once it has been
    recorded. ``finished`` is set when the file has played out (``error`` holds a read failure), and the ring
    is closed then, so ``read`` drains it and returns empty arrays.
    """

    def __init__(self, path: Path | str, blocksize: int = DEFAULT_BLOCKSIZE, buffer_s: float = DEFAULT_BUFFER_S):
        self._open(path, blocksize)
        self._ring = RingBuffer(max(int(self._file.samplerate * buffer_s), blocksize), self._file.channels)
        self._stop = threading.Event()
        self._finished = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._play, name=f"play {self.path.name}", daemon=True)

    @property
    def finished(self) -> bool:
        """The whole file has been delivered (or reading it failed: see ``error``)."""
        return self._finished.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop playing (within a block's sleep: the wait is interruptible); what was played stays readable."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._ring.close()
        self._file.close()

    def wait_finished(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def _play(self) -> None:
        import soundfile as sf

        rate = self._file.samplerate
        began = time.monotonic()
        played = 0
        played_out = False
        try:
            while not played_out and not self._stop.is_set():
                # Read several blocks at a time (fewer calls into libsndfile), deliver them one by one.
                chunk = self._file.read(self.blocksize * READ_BLOCKS, dtype="float32", always_2d=True)
                played_out = len(chunk) == 0
                for start in range(0, len(chunk), self.blocksize):
                    block = chunk[start:start + self.blocksize]
                    played += len(block)
                    # Due times come from the frame count, not from adding up sleeps, so the pace never drifts.
                    if self._stop.wait(max(0.0, began + played / rate - time.monotonic())):
                        break
                    self._ring.write(block)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            self.error = f"{self.path}: cannot read audio after {played / rate:.1f} s ({_one_line(e)})"
            played_out = True
        finally:
            self._ring.close()  # first, so whoever sees ``finished`` finds the ring closed
            if played_out:
                self._finished.set()


class FileReader(_RecordingFile):
    """A recording read as fast as the listener takes it (``record --fast`` on a ``file:`` device): no clock,
    no thread and no ring; ``read_indexed`` reads the next block from disk. Times stay the audio's own, so an
    hour of recording becomes the same clips in a minute. ``error`` holds a read failure, which ends it."""

    overruns = 0
    dropped_frames = 0

    def __init__(self, path: Path | str, blocksize: int = DEFAULT_BLOCKSIZE):
        self._open(path, blocksize)
        self._position = 0
        self._ended = False
        self.error: str | None = None

    @property
    def ended(self) -> bool:
        return self._ended

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._ended = True
        self._file.close()

    def read(self, timeout: float | None = None) -> np.ndarray:
        return self.read_indexed(timeout)[1]

    def read_indexed(self, timeout: float | None = None, min_frames: int = 1) -> tuple[int, np.ndarray]:
        import soundfile as sf

        first = self._position
        if self._ended:
            return first, np.zeros((0, self.channels), dtype=np.float32)
        try:
            block = self._file.read(max(min_frames, self.blocksize), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            self.error = f"{self.path}: cannot read audio after {first / self.samplerate:.1f} s ({_one_line(e)})"
            block = np.zeros((0, self.channels), dtype=np.float32)
        if len(block) == 0:
            self._ended = True
        self._position += len(block)
        return first, block


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (camera URLs carry them), for logs and records."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def ffmpeg_command(url: str, samplerate: int, ffmpeg: str = "ffmpeg") -> list[str]:
    """The ffmpeg command that decodes ``url``'s first audio stream, its channels mixed to mono, to float32 at
    ``samplerate`` on its stdout."""
    command = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
    if url.startswith(("rtsp://", "rtsps://")):
        command += ["-rtsp_transport", "tcp"]  # UDP is lost behind NAT and firewalls, and loses packets
    return command + ["-i", url, "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(samplerate), "-c:a", "pcm_f32le",
                      "-f", "f32le", "pipe:1"]


class StreamSource(_RingSource):
    """A network stream (``--device rtsp://...``, ``http(s)://...``, anything ffmpeg opens) as a microphone.

    ``start`` runs ``ffmpeg_command`` as a child process; a reader thread copies what it writes into the ring
    as ``[frames, 1]`` blocks of ``blocksize``. When ffmpeg exits (the stream ended, the connection broke, it
    could not connect) the ring is closed, ``ended`` is set and ``reason`` holds ffmpeg's last line; open a new
    ``StreamSource`` to try again. ``wait_audio`` waits for the first block, or for ffmpeg to give up.
    """

    def __init__(self, url: str, samplerate: int = 22050, blocksize: int = DEFAULT_BLOCKSIZE,
                 buffer_s: float = DEFAULT_BUFFER_S, ffmpeg: str = "ffmpeg"):
        self.url = url
        self.name = redact_url(url)
        self.blocksize = blocksize
        self._rate = int(samplerate)
        self._command = ffmpeg_command(url, self._rate, ffmpeg)
        self._ring = RingBuffer(max(int(self._rate * buffer_s), blocksize), 1)
        self._process: subprocess.Popen | None = None
        self._stderr: deque[str] = deque(maxlen=5)
        self._audio = threading.Event()  # the first block came
        self._reader: threading.Thread | None = None
        self._stderr_reader: threading.Thread | None = None
        self.reason: str | None = None  # once ended: ffmpeg's last line (or its exit status)

    @property
    def samplerate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return 1

    def start(self) -> None:
        try:
            self._process = subprocess.Popen(self._command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE)
        except OSError as e:
            self._ring.close()
            raise CaptureError(f"{self.name}: cannot start ffmpeg ({e.strerror or e}): network streams are read "
                               "through ffmpeg; install it (sudo apt install ffmpeg)") from e
        self._stderr_reader = threading.Thread(target=self._read_stderr, name="barkwatch ffmpeg log", daemon=True)
        self._stderr_reader.start()
        self._reader = threading.Thread(target=self._read, name="barkwatch stream", daemon=True)
        self._reader.start()

    def wait_audio(self, timeout: float | None = None) -> bool:
        """Wait until the first audio came (True) or ffmpeg ended without any, or ``timeout`` passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._audio.is_set() and not self._ring.closed:
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._audio.wait(0.05)
        return self._audio.is_set()

    def stop(self) -> None:
        """Stop ffmpeg (SIGTERM, then SIGKILL after 2 s) and the reader; what came stays readable."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in (self._reader, self._stderr_reader):
            if thread is not None and thread.is_alive():
                thread.join(2.0)
        self._ring.close()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        out = self._process.stdout
        size = self.blocksize * 4
        pending = b""
        try:
            while True:
                data = out.read1(size - len(pending))
                if not data:
                    break
                pending += data
                if len(pending) == size:  # whole blocks only: a float32 never splits across two
                    self._ring.write(np.frombuffer(pending, "<f4").reshape(-1, 1).copy())
                    self._audio.set()
                    pending = b""
        finally:
            code = self._process.wait()
            if self._stderr_reader is not None:
                self._stderr_reader.join(2.0)
            self.reason = self._stderr[-1] if self._stderr else f"ffmpeg exited with status {code}"
            self._ring.close()

    def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        password = urlsplit(self.url).password
        for line in self._process.stderr:
            text = line.decode(errors="replace").strip().replace(self.url, self.name)
            if password:
                text = text.replace(f":{password}@", ":***@")
            text = text.removeprefix(self.name + ": ")  # ffmpeg starts its lines with the URL
            if text:
                self._stderr.append(text)


def refresh_portaudio() -> None:
    """Make PortAudio list the devices again (those plugged in, or whose sound server came back, since).

    PortAudio enumerates devices only when it is initialised; terminating and initialising it again is the
    way sounddevice's maintainer gives for re-enumerating (python-sounddevice issue #125). It closes every
    open stream, so call it only with none open. The device list may differ afterwards: resolve devices
    again rather than reusing indices. Raises ``CaptureError`` if PortAudio cannot start again.
    """
    import sounddevice as sd

    try:
        sd._terminate()
    except sd.PortAudioError:  # not initialised (an earlier refresh failed half-way): initialise below
        pass
    try:
        sd._initialize()  # redirects PortAudio's probing noise on stderr to /dev/null itself
    except sd.PortAudioError as e:
        raise CaptureError(f"PortAudio cannot start again ({_one_line(e)})") from e


# What PortAudio's ALSA host API and ALSA itself print when a device fails or cannot be opened.
NATIVE_NOISE = (
    re.compile(r"Expression '.*' failed in '.*'(, line: \d+)?"),  # PortAudio's PA_ENSURE
    re.compile(r"ALSA lib .*"),
    re.compile(r"\s*"),  # the blank lines between them
)


class NativeStderrFilter:
    """A ``with`` block in which lines written to file descriptor 2 that match ``drop`` are left out.

    PortAudio and ALSA write several lines to stderr of their own every time a stream fails or cannot be
    opened (from PortAudio's own threads, where nothing else can catch them); a listener that retries a
    missing device for months would bury its log in them. File descriptor 2 is pointed at a pipe, and a
    thread copies every other line to the real stderr, Python's included, in order. Leaving the block (or
    ``close``) points fd 2 back and waits for the thread to copy what is left.
    """

    def __init__(self, drop: tuple[re.Pattern, ...] = NATIVE_NOISE):
        self.drop = drop
        self.dropped = 0
        self._original: int | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NativeStderrFilter:
        import os
        import sys

        sys.stderr.flush()
        try:
            original = os.dup(2)
            read_end, write_end = os.pipe()
        except OSError:  # no stderr to filter
            return self
        os.dup2(write_end, 2)
        os.close(write_end)
        self._original = original
        self._thread = threading.Thread(target=self._copy, args=(read_end, original), name="stderr filter",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        import os
        import sys

        original, self._original = self._original, None
        if original is None:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # the pipe's last write end closes: the thread reads to its end and stops
        self._thread.join(timeout=2.0)
        os.close(original)

    def __exit__(self, *exc) -> None:
        self.close()

    def _copy(self, read_end: int, out: int) -> None:
        import os

        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                kept = [line for line in lines if not self._noise(line)]
                if kept:
                    self._write(out, b"".join(line + b"\n" for line in kept))
        if pending and not self._noise(pending):
            self._write(out, pending)

    def _noise(self, line: bytes) -> bool:
        text = line.decode(errors="replace")
        if any(pattern.fullmatch(text) for pattern in self.drop):
            self.dropped += 1
            return True
        return False

    @staticmethod
    def _write(fd: int, data: bytes) -> None:
        import os

        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError:  # stderr went away: nothing left to tell
            pass


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
