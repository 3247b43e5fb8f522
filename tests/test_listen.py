"""`barkwatch listen`: the live loop, through a real PortAudio stream on the virtual microphone (``vmic``
fixture) in a subprocess, as a user runs it; and the listener's outage handling on sources made up in Python.

The clips are chosen for what each test checks: the shipped example with its known bark times, clips in which
offline ``detect`` finds no event (so a live false alarm would be the live path's own), and ESC-50 dog clips
in which offline ``detect`` finds barking from the first window on.
"""

from __future__ import annotations

import json
import re
import math
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from barkwatch.detection.detector import Detector, DetectorSettings
from barkwatch.live.capture import CaptureError
from barkwatch.live.listener import Backoff, Listener, ListenError
from barkwatch.model import modelfile

from helpers import DOGS, OTHERS, REPO, SAMPLES, run_cli

EXAMPLE = SAMPLES / "example.ogg"
# Offline detect finds barking from the first window to the end of each: a long bark when played in a row.
BARKING = [DOGS / "ESC-50_dog_1-30344-A-0.ogg", DOGS / "ESC-50_dog_1-59513-A-0.ogg",
           DOGS / "ESC-50_dog_1-85362-A-0.ogg"]
# Offline detect finds no event in any of these (rain, crackling fire, a clock, speech).
NOT_BARKS = [OTHERS / "ESC-50_rain_1-17367-A-10.ogg", OTHERS / "ESC-50_crackling_fire_1-17150-A-12.ogg",
             OTHERS / "FSDD_speech_digits_0_jackson_0.ogg", OTHERS / "ESC-50_clock_tick_1-21934-A-38.ogg",
             OTHERS / "FSDD_speech_digits_2_jackson_0.ogg"]
# The model's window and hop, from which every tolerance on times below is derived.
META = modelfile.read_metadata(modelfile.DEFAULT_MODEL)
WINDOW_S, HOP_S = META["window_s"], META["hop_s"]
# What is known of when playback starts: paplay's start-up, and the listener taking the first block's
# arrival as its time. Measured at 12-19 ms on this machine (a click played into the virtual microphone).
PLAYBACK_SLACK_S = 0.1


def concatenate(paths: list[Path], out: Path) -> Path:
    audio = [sf.read(str(p), dtype="float32")[0] for p in paths]
    sf.write(str(out), np.concatenate(audio), 22050)
    return out


def wall(record: dict, key: str = "start") -> float:
    return datetime.fromisoformat(record[key]).timestamp()


class Listen:
    """``barkwatch listen --events FILE`` in a subprocess, output to files that tests can poll."""

    def __init__(self, tmp_path: Path, *args: str, env: dict | None = None):
        self.events = tmp_path / "events.jsonl"
        self.out_path, self.err_path = tmp_path / "listen.stdout", tmp_path / "listen.stderr"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "barkwatch", "listen", *args, "--events",
                                          str(self.events)], cwd=REPO, env=env or dict(os.environ),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def records(self) -> list[dict]:
        if not self.events.exists():
            return []
        return [json.loads(line) for line in self.events.read_text().splitlines() if line.endswith("}")]

    def wait_for(self, condition, what: str, timeout: float) -> None:
        """Poll ``condition()`` until true; fail with the listener's output if it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"listen exited ({self.proc.returncode}) before {what}\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"no {what} within {timeout} s\n{self.stderr()[-3000:]}")
            time.sleep(0.02)

    def wait_stderr(self, needle: str, timeout: float, count: int = 1) -> None:
        self.wait_for(lambda: self.stderr().count(needle) >= count, repr(needle), timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        """Send ``sig``; the exit code and the seconds until the process had exited."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"listen did not exit within {timeout} s of signal {sig}\n{self.stderr()[-3000:]}")
        return code, time.monotonic() - sent

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def listening(vmic, tmp_path):
    """Start ``barkwatch listen`` on the virtual microphone; returns a function taking extra options."""
    started: list[Listen] = []

    def start(*args: str) -> Listen:
        listen = Listen(tmp_path, "--device", vmic.name, *args, env=vmic.env())
        started.append(listen)
        listen.wait_stderr("listening to", timeout=90)  # once the first audio has come
        return listen

    yield start
    for listen in started:
        listen.kill()


# Through the virtual microphone


def test_barks_played_into_the_microphone_are_found_at_their_times_and_nothing_else(vmic, listening):
    truth = sorted(json.loads((SAMPLES / "example.json").read_text())["barks"], key=lambda b: b["onset_s"])
    # At the recording's (and the model's) rate the virtual microphone delivers it sample for sample (16-bit),
    # so what is checked is the live path: capture, timing, events. At the device's default 44,100 Hz (the
    # other tests here) the round trip through the resamplers takes away the top ~0.5 kHz, where the
    # example's synthetic noise floor reaches, and the default model then scores the clock tick before the
    # last bark above its threshold (offline as well: the model's sensitivity, not the live loop's).
    listen = listening("--samplerate", str(vmic.rate))
    played = time.time()
    player = vmic.play(EXAMPLE)
    assert player.wait(timeout=120) == 0, player.stderr.read()
    code, _ = listen.stop()
    assert code == 0, listen.stderr()

    records = listen.records()
    starts = [r for r in records if r["event"] == "bark_start"]
    # The acceptance run's bar (issue 31): at least 80% of the barks, each at its time, and nothing else. The
    # example's first bark peaks at -49 dBFS, and the default scores its windows 0.50-0.89 against a
    # threshold of 0.487 offline: live, with the windows wherever capture started them, it is sometimes missed
    # (one play in three in benchmarks/latency.py, 2026-12-06).
    assert len(starts) >= 0.8 * len(truth), (starts, listen.stderr())
    found = set()
    for record in starts:
        heard = wall(record) - played  # the event's start, on the recording's time line
        # An event starts where its first window above the threshold starts. That window holds some of the
        # bark's clip, so it starts after the clip's start less a window; and, as offline, no later than two
        # hops after the onset (the window starting at the onset holds the bark's loudest part).
        matches = [i for i, bark in enumerate(truth) if bark["start_s"] - WINDOW_S - PLAYBACK_SLACK_S <= heard
                   <= bark["onset_s"] + 2 * HOP_S + PLAYBACK_SLACK_S and i not in found]
        assert matches, (heard, record, truth)  # every event is one of the barks, at its time
        found.add(matches[0])
        # --runtime auto: the shipped model's ONNX export, onnxruntime being installed here (scripts/setup)
        assert record["source"] == vmic.name and record["model"]["file"] == "default.onnx"
    ends = [r for r in records if r["event"] == "bark"]
    assert [r["id"] for r in ends] == [r["id"] for r in starts]  # every event ended, none twice
    out = listen.stdout()
    assert out.count("  bark  ") == len(starts) and f"stopped by SIGTERM: {len(starts)} event(s)" in out
    assert "0 overrun(s), 0 outage(s)" in out


def test_a_recording_without_barks_gives_no_event_and_ctrl_c_stops_it(vmic, listening, tmp_path):
    clip = concatenate(NOT_BARKS, tmp_path / "no-barks.wav")
    # At the model's rate, as the test above and for the same reason: at 44,100 Hz the resamplers' round trip
    # takes away the top bands and the default model scores this clock tick near its threshold (0.84 against
    # 0.80 in one run), a matter of the model (docs/listening.md), not of the live loop checked here.
    listen = listening("-v", "--samplerate", str(vmic.rate))
    player = vmic.play(clip)
    assert player.wait(timeout=60) == 0, player.stderr.read()
    code, _ = listen.stop(signal.SIGINT)
    assert code == 0, listen.stderr()
    assert listen.records() == []
    out = listen.stdout()
    assert "stopped by SIGINT: 0 event(s)" in out
    assert "max score" in out and "overruns 0, outages 0" in out  # -v: status lines


def test_the_sound_server_restarting_or_hanging_is_an_outage_and_detection_resumes(vmic, listening):
    listen = listening("-v")
    # 1. The server restarts: the stream fails at once; the device is reopened once the server is back.
    vmic.restart(down_s=1.0)
    listen.wait_stderr("listening again", timeout=30)
    # 2. The server hangs: no audio and no error; the watchdog calls it an outage after 5 s.
    vmic.freeze()
    listen.wait_stderr("no audio for", timeout=15)
    vmic.thaw()
    listen.wait_stderr("listening again", timeout=30, count=2)
    # 3. Detection works after both, with times anchored again: a bark played now is found now.
    played = time.time()
    player = vmic.play(BARKING[0])
    listen.wait_for(lambda: any(r["event"] == "bark_start" for r in listen.records()), "bark_start", 30)
    assert player.wait(timeout=30) == 0
    code, _ = listen.stop()
    assert code == 0, listen.stderr()

    starts = [r for r in listen.records() if r["event"] == "bark_start"]
    assert len(starts) == 1, starts  # nothing from the outages themselves
    # The clip barks from its first window (offline: an event from 0 s): so does the live event.
    assert -PLAYBACK_SLACK_S <= wall(starts[0]) - played <= 2 * HOP_S + PLAYBACK_SLACK_S, (starts, played)
    err = listen.stderr()
    lost = [line for line in err.splitlines() if ": lost (" in line]
    assert len(lost) == 2 and "(the stream failed)" in lost[0] and "(no audio for 5 s)" in lost[1], err
    assert "outage 1" in lost[0] and "outage 2" in lost[1]
    assert "Traceback" not in err
    # PortAudio's and ALSA's own lines, when the stream fails and at each reopening attempt, are filtered out.
    assert "Unable to connect" not in err and "Expression '" not in err and "ALSA lib" not in err, err
    out = listen.stdout()
    assert "stopped by SIGTERM: 1 event(s)" in out and ", 2 outage(s)" in out
    assert "outages 2" in out  # the status line counts them too


def test_sigterm_during_a_bark_writes_the_open_event_and_exits_0(vmic, listening, tmp_path):
    clip = concatenate(BARKING, tmp_path / "barking.wav")  # 15 s of barking
    listen = listening()
    player = vmic.play(clip)
    try:
        listen.wait_for(lambda: len(listen.records()) >= 1, "bark_start", timeout=30)
        code, took = listen.stop()
    finally:
        player.kill()
    assert code == 0, listen.stderr()
    records = listen.records()
    assert [r["event"] for r in records] == ["bark_start", "bark"], records
    start, end = records
    assert end["id"] == start["id"] and end["end_offset_s"] >= start["detected_offset_s"]
    assert took < 2.0, took  # the issue asks for 2 s (measured: about 0.5 s)
    assert "stopped by SIGTERM: 1 event(s)" in listen.stdout()


def test_a_device_that_is_not_found_is_one_line_naming_it_and_listing_inputs(vmic):
    result = subprocess.run([sys.executable, "-m", "barkwatch", "listen", "--device", "no such mic"],
                            capture_output=True, text=True, env=vmic.env(), cwd=REPO, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("barkwatch: error:"), result.stderr
    assert "'no such mic'" in lines[0] and "'vmic'" in lines[0]  # names it, lists the inputs


def test_devices_check_opens_the_device_and_reports_its_audio_or_says_why_not(vmic, tmp_path):
    """What install-service runs as the service's user before enabling the unit."""
    def check(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "barkwatch", "devices", "--check", *args], capture_output=True,
                              text=True, env=vmic.env(), cwd=tmp_path, timeout=60)

    player = vmic.play(BARKING[0])
    result = check("vmic")
    player.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"vmic: 'vmic' \(ALSA\) at [\d,]+ Hz, \d channel\(s\): audio comes, level -\d+\.\d dBFS\n",
                        result.stdout), result.stdout
    config = tmp_path / "config.yaml"
    config.write_text("audio:\n  device: vmic\n")
    assert check("config", "--config", str(config)).returncode == 0
    result = check("hw:7")
    assert result.returncode == 2 and result.stderr.startswith("barkwatch: error: no input device matches 'hw:7'")
    assert "'vmic'" in result.stderr


# file: sources, through the same loop


@pytest.mark.live
def test_a_file_source_finds_its_barks_and_ends_with_the_file(tmp_path):
    truth = sorted(json.loads((SAMPLES / "example.json").read_text())["barks"], key=lambda b: b["onset_s"])
    audio, rate = sf.read(str(EXAMPLE), dtype="float32")
    clip = tmp_path / "example-20s.wav"  # the first 20 s: two barks, and quick to play in real time
    sf.write(str(clip), audio[:20 * rate], rate)
    inside = [b for b in truth if b["end_s"] <= 20.0]
    listen = Listen(tmp_path, "--device", f"file:{clip}")
    try:
        code = listen.proc.wait(timeout=120)
    finally:
        listen.kill()
    assert code == 0, listen.stderr()
    records = listen.records()
    starts = [r for r in records if r["event"] == "bark_start"]
    assert len(starts) == len(inside) == 2, records
    for bark, record in zip(inside, starts):
        assert record["source"] == str(clip)
        # The same bounds as through the microphone, on the stream's own time line.
        assert bark["start_s"] - WINDOW_S - PLAYBACK_SLACK_S <= record["offset_s"] \
            <= bark["onset_s"] + 2 * HOP_S + PLAYBACK_SLACK_S, (bark, record)
    assert [r["event"] for r in records].count("bark") == 2
    assert "ended: 2 event(s) in 20.0 s of audio" in listen.stdout()


def test_bad_options_are_one_line_and_exit_2(tmp_path):
    clip = concatenate(NOT_BARKS[:1], tmp_path / "a.wav")
    for args, needle in [(["--device", f"file:{tmp_path / 'none.wav'}"], "no such file"),
                         (["--device", f"file:{clip}", "--samplerate", "16000"], "--samplerate"),
                         (["--device", f"file:{clip}", "--channel", "1"], "--channel 1"),
                         (["--device", f"file:{clip}", "-q", "-v"], "-q and -v")]:
        result = run_cli("listen", *args, timeout=120)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, result.stderr)


# The listener's own logic, on sources made up here (no PortAudio): the watchdog, reconnection with backoff,
# dropped audio, and stopping while a device call hangs.


def test_backoff_doubles_from_half_a_second_to_thirty_and_stays_there():
    backoff = Backoff()
    delays = backoff.delays()
    assert [next(delays) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff.delay(10**9) == 30  # months of retrying: no overflow
    assert Backoff(first_s=1, factor=1, max_s=1).delay(5) == 1
    for bad in (dict(first_s=0), dict(factor=0.5), dict(first_s=5, max_s=1)):
        with pytest.raises(ValueError):
            Backoff(**bad)


class MadeUpSource:
    """An ``AudioSource`` with ``blocks`` of audio at 22,050 Hz; after them it ends (``fail``) or goes quiet."""

    samplerate, channels, overruns = 22050, 1, 0

    def __init__(self, blocks: list[tuple[int, np.ndarray]], fail: bool = False):
        self.blocks = list(blocks)
        self.fail = fail
        self.ended = False
        self.stopped = False
        self.last_block_at = math.nan  # when the last block was read, or the stream failed

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = self.ended = True

    def read(self, timeout=None):
        return self.read_indexed(timeout)[1]

    def read_indexed(self, timeout=None, min_frames=1):
        if self.blocks:
            if len(self.blocks) == 1:
                self.last_block_at = time.monotonic()
            return self.blocks.pop(0)
        if self.fail and not self.ended:
            self.ended, self.last_block_at = True, time.monotonic()
        elif not self.ended and timeout:
            time.sleep(timeout)
        return 0, np.zeros((0, 1), dtype=np.float32)


def blocks(seconds: float, first: int = 0, seed: int = 0) -> list[tuple[int, np.ndarray]]:
    """Noise loud enough to pass the gate, in blocks of 1024 frames numbered from ``first``."""
    audio = np.random.default_rng(seed).uniform(-0.3, 0.3, (int(seconds * 22050), 1)).astype(np.float32)
    return [(first + i, audio[i:i + 1024]) for i in range(0, len(audio), 1024)]


class MadeUpOpener:
    """Hands out ``sources`` in turn; ``None`` in the list is an attempt that fails, ``"hang"`` one that never
    returns. Records when each reopening was tried."""

    name = "made-up mic"
    reconnects = True

    def __init__(self, sources: list):
        self.sources = list(sources)
        self.attempts: list[float] = []
        self.hanging = threading.Event()

    def open(self, again: bool):
        if again:
            self.attempts.append(time.monotonic())
        source = self.sources.pop(0)
        if source == "hang":
            self.hanging.set()
            threading.Event().wait()  # a frozen sound server
        if source is None:
            raise CaptureError("made-up mic: not there")
        return source

    def describe(self, source) -> str:
        return self.name


def listener(random_model, opener, records, **kwargs) -> Listener:
    # Threshold 0: every window is a bark, so each stream is one event from its start to where it stops.
    detector = Detector(modelfile.load(random_model), DetectorSettings(hop_s=HOP_S, threshold=0.0))
    return Listener(opener, detector, on_record=records.append, **kwargs)


def test_no_audio_is_an_outage_the_open_event_is_closed_and_reopening_backs_off(random_model):
    quiet_first = MadeUpSource(blocks(3.0))  # 3 s of audio, then nothing and no error
    failing_second = MadeUpSource(blocks(2.0, seed=1), fail=True)  # 2 s, then the stream fails
    opener = MadeUpOpener([quiet_first, None, None, failing_second, "hang"])
    records: list[dict] = []
    statuses: list[str] = []
    backoff = Backoff(first_s=0.2, factor=2, max_s=0.5)
    listen = listener(random_model, opener, records, stall_s=0.5, backoff=backoff, status_every_s=0.2,
                      on_status=statuses.append)
    listen.start()
    assert opener.hanging.wait(30), records  # the third reopening hangs: a sound server that froze
    stopping = time.monotonic()
    listen.stop()
    assert listen.wait(2.0) and time.monotonic() - stopping < 2.0  # the stop does not wait for the hung call
    assert listen.hung and listen.error is None

    assert [r["event"] for r in records] == ["bark_start", "bark"] * 2
    first, second = records[1], records[3]
    assert first["end_offset_s"] == pytest.approx(3.0, abs=0.05)  # closed where the audio stopped
    assert second["end_offset_s"] == pytest.approx(2.0, abs=0.05)
    # The second stream is anchored again when it started: after the watchdog's 0.5 s and three waits.
    assert wall(second) - wall(first) >= 0.5 + 0.2 + 0.4 + 0.5
    assert quiet_first.stopped and failing_second.stopped
    # Reopening: the first try 0.2 s after the loss (the watchdog's 0.5 s after the last audio), then waits
    # doubling up to 0.5 s; after the second outage the waits start again from 0.2 s.
    attempts = opener.attempts
    assert attempts[0] - quiet_first.last_block_at >= 0.5 + 0.2 - 0.01
    assert np.all(np.diff(attempts[:3]) >= np.array([0.4, 0.5]) - 0.01), attempts
    assert 0.2 - 0.01 <= attempts[3] - failing_second.last_block_at < 0.45, attempts
    assert listen.stats.outages == 2 and listen.stats.events == 2
    assert any("down for" in s for s in statuses) and all("outages" in s for s in statuses)


def test_audio_the_ring_dropped_becomes_silence_so_times_stay_right(random_model):
    # 2 s of audio, then 1.5 s lost (the reader fell behind), then 2 s: frames numbered as the ring does.
    lost = int(1.5 * 22050)
    made_up = blocks(2.0) + blocks(2.0, first=int(2.0 * 22050) + lost, seed=1)
    source = MadeUpSource(made_up, fail=True)
    opener = MadeUpOpener([source, "hang"])
    records: list[dict] = []
    listen = listener(random_model, opener, records, backoff=Backoff(first_s=60, max_s=60))
    listen.start()
    deadline = time.monotonic() + 30
    while listen.stats.outages < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    listen.stop()
    assert listen.wait(5)
    assert listen.stats.dropped_s == pytest.approx(1.5, abs=1e-3)
    assert listen.stats.audio_s == pytest.approx(4.0, abs=0.05)
    # One event over all of it (threshold 0), which ends where the audio really did: after the 2 s before,
    # the 1.5 s lost and the 2 s after, not 4 s in.
    assert [r["event"] for r in records] == ["bark_start", "bark"]
    assert records[1]["end_offset_s"] == pytest.approx(5.5, abs=0.05)


def test_a_channel_the_source_does_not_have_is_refused(random_model):
    opener = MadeUpOpener([MadeUpSource(blocks(1.0))])
    detector = Detector(modelfile.load(random_model), DetectorSettings(channel=1, threshold=0.5))
    listen = Listener(opener, detector, on_record=lambda r: None)
    with pytest.raises(ListenError, match="--channel 1"):
        listen.start()
    assert opener.sources == [] and listen.stats.windows == 0
