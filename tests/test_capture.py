"""Capture: the ring between the audio thread and the reader, files played in real time, and a real
PortAudio input stream on the virtual microphone (``vmic`` fixture), including the sound server dying."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from barkwatch.live.capture import CaptureError, FilePlayer, RingBuffer

from helpers import DOGS, REPO

CLIP = DOGS / "ESC-50_dog_1-100032-A-0.ogg"  # 5 s, 22,050 Hz mono: the virtual microphone's rate
LSB16 = 1 / 32768  # the null sink stores 16-bit samples


def ramp(first: int, frames: int, channels: int = 2) -> np.ndarray:
    """Frames numbered ``first``..: frame i holds i in channel 0 and -i in channel 1, so order shows."""
    index = np.arange(first, first + frames, dtype=np.float32)
    return np.stack([index, -index], axis=1)[:, :channels]


# RingBuffer


def test_ring_keeps_order_across_wrap_around():
    ring = RingBuffer(10, 2)
    written, got = 0, []
    for frames, take in [(4, 3), (7, 5), (6, 9), (9, 2), (3, 10), (10, 10)]:  # wraps several times
        ring.write(ramp(written, frames))
        written += frames
        got.append(ring.read(max_frames=take))
    assert [len(g) for g in got] == [3, 5, 9, 2, 10, 10]
    np.testing.assert_array_equal(np.concatenate(got), ramp(0, written - ring.available))
    assert (ring.frames_written, ring.overruns, ring.dropped_frames) == (written, 0, 0)


def test_ring_overrun_keeps_the_newest_frames_and_counts_the_dropped_ones():
    ring = RingBuffer(8, 2)
    ring.write(ramp(0, 5))
    ring.write(ramp(5, 6))  # 11 unread in 8 places: frames 0-2 go
    np.testing.assert_array_equal(ring.read(), ramp(3, 8))
    assert (ring.overruns, ring.dropped_frames) == (1, 3)
    ring.write(ramp(11, 20))  # one block larger than the ring: only its last 8 frames fit
    np.testing.assert_array_equal(ring.read(), ramp(23, 8))
    assert (ring.overruns, ring.dropped_frames, ring.frames_written) == (2, 15, 31)
    ring.write(ramp(31, 8))  # exactly full is no overrun
    np.testing.assert_array_equal(ring.read(), ramp(31, 8))
    assert ring.overruns == 2


def test_ring_takes_mono_blocks_as_one_column():
    ring = RingBuffer(4, 1)
    ring.write(np.array([0.5, -0.5], dtype=np.float32))
    got = ring.read()
    assert got.shape == (2, 1) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:, 0], [0.5, -0.5])


def test_ring_read_times_out_empty_and_wakes_when_frames_come():
    ring = RingBuffer(16, 2)
    began = time.monotonic()
    got = ring.read(timeout=0.2)
    waited = time.monotonic() - began
    assert got.shape == (0, 2) and got.dtype == np.float32
    assert 0.19 <= waited < 0.6

    threading.Timer(0.1, ring.write, [ramp(0, 3)]).start()
    began = time.monotonic()
    got = ring.read(timeout=5)
    assert time.monotonic() - began < 1.0  # woken by the write, not by the timeout
    np.testing.assert_array_equal(got, ramp(0, 3))


def test_ring_close_wakes_a_reader_and_leaves_what_was_written():
    ring = RingBuffer(16, 2)
    threading.Timer(0.1, ring.close).start()
    began = time.monotonic()
    assert len(ring.read()) == 0  # no timeout: only close() can end this wait
    assert time.monotonic() - began < 1.0

    ring = RingBuffer(16, 2)
    ring.write(ramp(0, 4))
    ring.close()
    ring.write(ramp(4, 4))  # ignored after close
    np.testing.assert_array_equal(ring.read(timeout=5), ramp(0, 4))
    assert len(ring.read(timeout=5)) == 0 and ring.closed


def test_ring_loses_nothing_between_threads_when_the_reader_keeps_up():
    ring = RingBuffer(1000, 2)
    total, block = 200_000, 97  # 200 laps of the ring in blocks that never line up with its end

    def writer():
        for first in range(0, total, block):
            while ring.available > ring.capacity // 2:  # the reader keeps up: the writer never laps it
                time.sleep(0.0002)
            ring.write(ramp(first, min(block, total - first)))
        ring.close()

    thread = threading.Thread(target=writer)
    thread.start()
    got = []
    while len(chunk := ring.read(max_frames=333, timeout=5)):
        got.append(chunk)
    thread.join()
    np.testing.assert_array_equal(np.concatenate(got), ramp(0, total))
    assert (ring.frames_written, ring.dropped_frames, ring.overruns) == (total, 0, 0)


# FilePlayer


@pytest.mark.live
def test_file_player_plays_a_recording_in_real_time_sample_for_sample():
    expected, rate = sf.read(str(CLIP), dtype="float32", always_2d=True)
    duration = len(expected) / rate
    player = FilePlayer(CLIP, blocksize=1024)
    assert (player.samplerate, player.channels) == (rate, 1)
    got, pace = [], []
    began = time.monotonic()
    player.start()
    while len(block := player.read(timeout=2)):
        got.append(block)
        pace.append((time.monotonic() - began, sum(len(b) for b in got) / rate))
    wall = time.monotonic() - began
    player.stop()
    np.testing.assert_array_equal(np.concatenate(got), expected)
    assert 0.9 * duration <= wall <= 1.3 * duration, wall
    # Like a microphone: a block comes once its last frame is due, never early, and not much later.
    assert all(audio_s <= elapsed + 0.005 for elapsed, audio_s in pace), pace[:5]
    assert all(audio_s >= elapsed - 0.3 for elapsed, audio_s in pace), pace[:5]
    assert player.finished and player.error is None and player.overruns == 0


def test_file_player_stops_within_a_long_block():
    player = FilePlayer(CLIP, blocksize=2 * 22050)  # the first block is due 2 s after start
    player.start()
    time.sleep(0.2)
    began = time.monotonic()
    player.stop()
    assert time.monotonic() - began < 0.5
    assert player.ended and not player.finished
    assert len(player.read(timeout=1)) == 0


def test_file_player_refuses_a_missing_file_in_one_line(tmp_path):
    with pytest.raises(CaptureError) as caught:
        FilePlayer(tmp_path / "nothing.ogg")
    assert str(tmp_path / "nothing.ogg") in str(caught.value) and "\n" not in str(caught.value)


# MicrophoneSource on the virtual microphone. PortAudio lists devices once, at import: each capture runs in
# a fresh process started with the virtual microphone's environment.

CAPTURE_SCRIPT = '''
"""Capture from opts["device"] with MicrophoneSource; save the audio as .npy and print a JSON report."""
import json, sys, time
import numpy as np
import sounddevice as sd
from barkwatch.live.capture import CaptureError, MicrophoneSource

opts = json.loads(sys.argv[1])
source = MicrophoneSource(opts["device"], samplerate=opts.get("samplerate"), buffer_s=opts.get("buffer_s", 10.0))
source.start()
began = time.monotonic()
# Announce only once audio flows, so whatever the test plays next is captured from its first sample.
blocks = [source.read(timeout=2.0)]
first_block_s = time.monotonic() - began if len(blocks[0]) else None
print("capturing", flush=True)
time.sleep(opts.get("stall_s", 0))  # a reader that falls behind
while time.monotonic() - began < opts["seconds"] and not source.ended:
    blocks.append(source.read(timeout=0.1))
ended_s = time.monotonic() - began
stop_began = time.monotonic()
source.stop()
stop_s = time.monotonic() - stop_began
blocks.append(source.read(timeout=0))
audio = np.concatenate(blocks)
np.save(opts["out"], audio)
report = dict(samplerate=source.samplerate, channels=source.channels, failed=source.failed,
              default_samplerate=sd.query_devices(opts["device"], "input")["default_samplerate"],
              first_block_s=first_block_s, ended_s=ended_s, stop_s=stop_s, frames=len(audio),
              overruns=source.overruns, dropped_frames=source.dropped_frames)
if opts.get("reopen_s"):  # the device went away: try again until it is back
    errors, deadline = [], time.monotonic() + opts["reopen_s"]
    while True:
        try:
            again = MicrophoneSource(opts["device"], samplerate=opts.get("samplerate"))
            again.start()
            break
        except CaptureError as e:
            errors.append(str(e))
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    reopened, frames = time.monotonic(), 0
    while time.monotonic() - reopened < 0.5:
        frames += len(again.read(timeout=0.1))
    again.stop()
    report.update(reopen_errors=errors, reopened_frames=frames)
print(json.dumps(report), flush=True)
'''


class Capture:
    """The capture script running in a subprocess with the virtual microphone's environment."""

    def __init__(self, vmic, tmp_path: Path, **opts):
        script = tmp_path / "capture.py"
        script.write_text(CAPTURE_SCRIPT)
        self.out = tmp_path / "captured.npy"
        self.stderr_path = tmp_path / "capture.stderr"  # a file: PortAudio and ALSA write much when it fails
        opts = dict(device=vmic.name, out=str(self.out), **opts)
        with open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen([sys.executable, str(script), json.dumps(opts)], env=vmic.env(),
                                         cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
        line = self.proc.stdout.readline()
        assert line == "capturing\n", f"capture did not start: {line!r}\n{self.stderr()}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def finish(self, timeout: float) -> tuple[dict, np.ndarray]:
        """Wait for the report (failing the test after ``timeout`` seconds: a hung capture)."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            pytest.fail(f"the capture process hung for {timeout} s\n{self.stderr()}")
        assert self.proc.returncode == 0, self.stderr()
        return json.loads(out.splitlines()[-1]), np.load(self.out)


def best_match(captured: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """The lag of ``reference`` in ``captured`` and the normalised cross-correlation there."""
    from scipy.signal import correlate

    lag = int(np.argmax(np.abs(correlate(captured, reference, mode="valid", method="fft"))))
    segment = captured[lag:lag + len(reference)]
    return lag, float(np.dot(segment, reference) / (np.linalg.norm(segment) * np.linalg.norm(reference)))


@pytest.mark.parametrize("samplerate", [22050, None], ids=["vmic-rate", "device-default-rate"])
def test_microphone_captures_what_is_played_into_the_virtual_microphone(vmic, tmp_path, samplerate):
    import soxr

    clip, rate = sf.read(str(CLIP), dtype="float32")
    seconds = 6.0  # the 5 s clip starts playing about 0.1 s in
    capture = Capture(vmic, tmp_path, samplerate=samplerate, seconds=seconds)
    player = vmic.play(CLIP)
    assert player.wait(timeout=15) == 0, player.stderr.read()
    report, audio = capture.finish(timeout=15)

    got_rate = report["samplerate"]
    assert got_rate == (samplerate or report["default_samplerate"])
    assert report["channels"] == 2  # the ALSA pulse PCM offers 32 channels: capped at 2
    assert report["failed"] is False and report["overruns"] == 0
    assert report["first_block_s"] < 0.5  # no 1.5-2 s stall of an idle null sink
    assert report["stop_s"] < 0.5
    # The null sink runs on the system clock: what was captured is as long as the capture ran.
    assert abs(len(audio) / got_rate - report["ended_s"]) < 0.25, (len(audio) / got_rate, report)

    reference = clip if got_rate == rate else soxr.resample(clip, rate, got_rate)
    mono = audio[:, 0]
    lag, ncc = best_match(mono, reference)
    assert ncc > 0.99, (lag, ncc)
    if got_rate == rate:  # no resampling anywhere: the clip to the sink's 16 bits
        assert np.abs(mono[lag:lag + len(reference)] - reference).max() <= 2 * LSB16
    margin = int(0.05 * got_rate)  # a resampler's ringing at the clip's edges
    outside = np.concatenate([mono[:max(lag - margin, 0)], mono[lag + len(reference) + margin:]])
    assert len(outside) > 0.3 * got_rate and np.abs(outside).max() < 1e-3  # silence, no repeated blocks


def test_microphone_overrun_keeps_the_newest_audio_when_the_reader_falls_behind(vmic, tmp_path):
    capture = Capture(vmic, tmp_path, samplerate=22050, buffer_s=0.5, stall_s=1.5, seconds=2.0)
    report, audio = capture.finish(timeout=15)
    dropped_s = report["dropped_frames"] / 22050
    assert report["overruns"] >= 1 and 0.8 < dropped_s < 1.6, report  # 1.5 s stalled, 0.5 s held
    assert abs(len(audio) / 22050 + dropped_s - report["ended_s"]) < 0.25, report
    assert report["failed"] is False


def test_microphone_fails_promptly_when_the_sound_server_dies(vmic, tmp_path):
    capture = Capture(vmic, tmp_path, samplerate=22050, seconds=30.0)
    time.sleep(0.5)
    killed = time.monotonic()
    vmic.stop_server()
    report, audio = capture.finish(timeout=10)
    assert time.monotonic() - killed < 5.0  # the capture noticed and the process exited; nothing hung
    assert report["failed"] is True
    assert 0.3 < report["ended_s"] < 5.0 and report["stop_s"] < 0.5, report
    assert len(audio) > 0.3 * 22050  # what came before the failure is kept


def test_microphone_can_be_reopened_once_the_sound_server_is_back(vmic, tmp_path):
    capture = Capture(vmic, tmp_path, samplerate=22050, seconds=30.0, reopen_s=10.0)
    time.sleep(0.3)
    vmic.restart(down_s=1.0)
    report, _ = capture.finish(timeout=20)
    assert report["failed"] is True
    # While the server was down, opening failed with one line naming the device; then it worked again.
    errors = report["reopen_errors"]
    assert len(errors) >= 2 and all("'vmic'" in e and "\n" not in e for e in errors), errors
    assert report["reopened_frames"] > 0.3 * 22050, report


def test_microphone_refuses_an_unknown_device_in_one_line():
    try:
        import sounddevice  # noqa: F401
    except OSError as e:  # no libportaudio2
        pytest.skip(f"PortAudio cannot be loaded: {e}")
    from barkwatch.live.capture import MicrophoneSource

    with pytest.raises(CaptureError) as caught:
        MicrophoneSource("no such microphone")
    message = str(caught.value)
    assert "'no such microphone'" in message and "\n" not in message
