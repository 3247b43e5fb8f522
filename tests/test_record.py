"""`barkwatch record`: sounds captured through sounddevice from the virtual microphone become clips with an
index, the background is sampled, and the disk budget and time limit stop it; the room-floor rule on numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest
import soundfile as sf

from barkwatch.live.record import FLOOR_MIN_WINDOWS, LevelScorer, read_index
from helpers import DOGS, REPO, run_cli

SR = 22050


def tone_windows(levels_dbfs, n=SR):
    """One 1 s window of noise per level, at that RMS level."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((len(levels_dbfs), n)).astype(np.float32)
    noise /= np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True))
    return noise * (10 ** (np.asarray(levels_dbfs, dtype=np.float32) / 20))[:, None]


def test_level_scorer_keeps_what_stands_out_from_the_room():
    scorer = LevelScorer(SR, SR, 0.25, margin_db=10.0, min_dbfs=-60.0)
    # Nothing is kept until the floor is known.
    assert scorer.score(tone_windows([-20.0] * 5))[2].tolist() == [0.0] * 5
    scorer.score(tone_windows([-50.0] * FLOOR_MIN_WINDOWS))
    assert scorer.floor_dbfs == pytest.approx(-50.0, abs=0.5)
    scores = scorer.score(tone_windows([-45.0, -39.0, -30.0]))[2].tolist()
    assert scores == [0.0, 1.0, 1.0]  # 5 dB over the floor is the room; 11 and 20 dB over stand out
    quiet = LevelScorer(SR, SR, 0.25, margin_db=10.0, min_dbfs=-60.0)
    quiet.score(tone_windows([-90.0] * FLOOR_MIN_WINDOWS))
    assert quiet.score(tone_windows([-75.0, -55.0]))[2].tolist() == [0.0, 1.0]  # never below min_dbfs
    fixed = LevelScorer(SR, SR, 0.25, level_dbfs=-40.0)
    assert fixed.score(tone_windows([-41.0, -39.0]))[2].tolist() == [0.0, 1.0]


def quiet_then(path, tmp_path, before_s=4.0, after_s=6.0):
    """``path`` between stretches of digital silence, as one file to play."""
    audio, rate = sf.read(str(path), dtype="float32")
    assert rate == SR
    out = tmp_path / "play.wav"
    sf.write(str(out), np.concatenate([np.zeros(int(before_s * SR), np.float32), audio,
                                       np.zeros(int(after_s * SR), np.float32)]), SR)
    return out, audio


def test_sounds_from_the_microphone_become_clips_with_an_index(vmic, tmp_path):
    dog = DOGS / "ESC-50_dog_1-30344-A-0.ogg"
    play, audio = quiet_then(dog, tmp_path)
    out = tmp_path / "rec"
    err_path, out_path = tmp_path / "record.stderr", tmp_path / "record.stdout"
    with open(out_path, "w") as stdout_file, open(err_path, "w") as stderr_file:
        proc = subprocess.Popen([sys.executable, "-m", "barkwatch", "record", "--device", vmic.name, "--out",
                                 str(out), "--minutes", "0.4", "--level", "-45", "--background-every", "0.1"],
                                cwd=REPO, env=vmic.env(), stdout=stdout_file, stderr=stderr_file)
    deadline = time.monotonic() + 90
    while "Ctrl-C stops" not in err_path.read_text():  # printed once the stream is open
        assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()
        time.sleep(0.05)
    played_at = time.time()
    vmic.play(play).wait(timeout=60)
    proc.wait(timeout=90)
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert proc.returncode == 0, stderr
    assert "stopped by the time limit" in stdout

    entries = read_index(out)
    sounds = [e for e in entries if e["kind"] == "sound"]
    backgrounds = [e for e in entries if e["kind"] == "background"]
    assert len(backgrounds) >= 2 and all((out / e["clip"]).is_file() for e in entries)
    assert 1 <= len(sounds) <= 3, sounds
    # The dog clip's loud part, found where it was played (within a window) and kept with a second either side.
    active = np.flatnonzero(np.abs(audio) > 10 ** (-45 / 20))
    onset = played_at + 4.0 + active[0] / SR
    first = datetime.fromisoformat(sounds[0]["start"]).timestamp()
    assert onset - 1.5 <= first <= onset + 1.0, (first - onset)
    kept, rate = sf.read(str(out / sounds[0]["clip"]), dtype="float32")
    if rate != SR:  # clips keep the stream's own rate (the virtual microphone's default may be 44.1 kHz)
        import soxr

        kept = soxr.resample(kept, rate, SR)
    # The clip holds the played audio itself: its loudest second matches the dog clip's (16-bit sink).
    lag = int(np.argmax(np.correlate(kept[: 6 * SR], audio[: 2 * SR], mode="valid")))
    segment = kept[lag: lag + 2 * SR]
    assert np.corrcoef(segment, audio[: len(segment)])[0, 1] > 0.99
    # An event runs from its first loud window's start to its last one's end: at most a window either side.
    assert sum(e["duration_s"] for e in sounds) <= (active[-1] - active[0]) / SR + 2.0 + 0.25


@pytest.mark.live
def test_recording_stops_at_the_disk_budget_and_a_second_run_adds_to_the_folder(tmp_path):
    dogs = sorted(DOGS.iterdir())[:2]
    play = tmp_path / "two.wav"
    sf.write(str(play), np.concatenate([sf.read(str(p), dtype="float32")[0] for p in dogs]), SR)
    out = tmp_path / "rec"
    result = run_cli("record", "--device", f"file:{play}", "--out", str(out), "--level", "-40",
                     "--background-every", "0", "--max-mb", "0.02")
    assert result.returncode == 0, result.stderr
    assert "stopped by the disk budget" in result.stdout
    assert "disk budget" in result.stderr  # the warning says why
    first = read_index(out)
    # Clips are measured once written (a second after their stretch ends): one more may have begun by then.
    assert 1 <= len(first) <= 2 and all(e["kind"] == "sound" for e in first)

    result = run_cli("record", "--device", f"file:{play}", "--out", str(out), "--keep", "barks",
                     "--background-every", "0", "-q")
    assert result.returncode == 0, result.stderr
    entries = read_index(out)
    barks = [e for e in entries if e["kind"] == "bark"]
    assert entries[: len(first)] == first and barks and all(0.5 <= e["score"] <= 1.0 for e in barks)
    lines = (out / "recorded.jsonl").read_text().splitlines()
    assert all(json.loads(x) for x in lines)


def test_bad_options_name_themselves(tmp_path):
    result = run_cli("record", "--out", str(tmp_path / "r"), "--keep", "everything")
    assert result.returncode == 2 and "--keep everything" in result.stderr
    result = run_cli("record", "--out", str(tmp_path / "r"), "--until", "noonish")
    assert result.returncode == 2 and "--until noonish" in result.stderr
    result = run_cli("record", "--out", str(tmp_path / "r"), "--device", "no-such-mic-anywhere")
    assert result.returncode == 2 and "no-such-mic-anywhere" in result.stderr
    result = run_cli("record", "--out", str(tmp_path / "r"), "--device", "default", "--fast")
    assert result.returncode == 2 and "--fast" in result.stderr and "file:" in result.stderr


@pytest.mark.slow
def test_fast_reads_a_long_recording_in_less_than_its_length_with_its_own_times(tmp_path):
    # Two barks 50 s apart in a minute of quiet, then 30 short sounds 5 s apart (faster than the clip encoder
    # at full speed: each waits for it, none is skipped). Each is kept where it is in the file.
    audio, _ = sf.read(str(DOGS / "ESC-50_dog_1-30344-A-0.ogg"), dtype="float32")
    audio = audio[: 4 * SR]
    play = np.zeros(210 * SR, np.float32)
    for at in (5, 55):
        play[at * SR: at * SR + len(audio)] += audio
    for at in range(70, 210, 5):
        play[at * SR: at * SR + SR // 2] += audio[:SR // 2] / np.abs(audio[:SR // 2]).max() * 0.3
    path = tmp_path / "minute.wav"
    sf.write(str(path), play, SR)
    out = tmp_path / "rec"
    began = time.monotonic()
    result = run_cli("record", "--device", f"file:{path}", "--out", str(out), "--level", "-45",
                     "--background-every", "0", "--fast")
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert took < 210, took  # not played in real time
    sounds = [e for e in read_index(out) if e["kind"] == "sound"]
    assert len(sounds) == 30 and all((out / e["clip"]).is_file() for e in sounds)
    active = np.flatnonzero(np.abs(audio) > 10 ** (-45 / 20))
    found = sorted(e["offset_s"] for e in sounds)[:2]
    for at, offset in zip((5, 55), found):
        assert at + active[0] / SR - 1.0 <= offset <= at + active[0] / SR + 0.25, (at, offset)
    # Local times follow the audio, not the wall clock: the second bark is 50 s after the first.
    starts = sorted(datetime.fromisoformat(e["start"]).timestamp() for e in sounds)[:2]
    assert starts[1] - starts[0] == pytest.approx(50.0, abs=0.5)


def test_keep_all_writes_every_sample_in_pieces_and_indexes_each(tmp_path):
    """``StreamRecorder`` fed a real recording in blocks: 10 s pieces whose samples are the input's (to 16
    bits), each indexed with its offset once closed, no ``.part`` file left."""
    from barkwatch.live.record import StreamRecorder

    audio = np.concatenate([sf.read(str(p), dtype="float32")[0] for p in sorted(DOGS.iterdir())[:6]])[:25 * SR]
    recorder = StreamRecorder(tmp_path / "quiet", max_bytes=10**9, piece_s=10.0)
    recorder.stream_began(datetime(2026, 12, 5, 7, 0, 0).astimezone(), SR)
    block = 5000  # not a divisor of a piece: blocks cross the pieces' ends
    for i in range(0, len(audio), block):
        recorder.audio(audio[i:i + block], i / SR)
    recorder.stream_ended()
    recorder.close()
    entries = read_index(tmp_path / "quiet")
    assert [e["kind"] for e in entries] == ["audio"] * 3
    assert [e["offset_s"] for e in entries] == [0.0, 10.0, 20.0]
    assert [e["duration_s"] for e in entries] == [10.0, 10.0, 5.0]
    assert entries[1]["start"].startswith("2026-12-05T07:00:10")
    pieces = [sf.read(str(tmp_path / "quiet" / e["clip"]), dtype="float32") for e in entries]
    assert all(rate == SR for _, rate in pieces)
    # 16 bits: what the decoder gave over full scale (a loud ESC-50 bark does) is clipped there.
    np.testing.assert_allclose(np.concatenate([a for a, _ in pieces]), np.clip(audio, -1, 1), atol=1.0 / 32768)
    assert not list((tmp_path / "quiet").rglob("*.part")) and recorder.seconds == pytest.approx(25.0)


def test_keep_all_on_a_full_disk_stops_with_the_pieces_before_it_kept(tmp_path, tmpfs):
    from barkwatch.live.record import StreamRecorder

    out = tmpfs("256k")
    stopped = []
    recorder = StreamRecorder(out / "quiet", max_bytes=10**9, piece_s=1.0, on_full=lambda: stopped.append(1))
    recorder.stream_began(datetime.now().astimezone(), SR)
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 60 * SR).astype(np.float32)  # about 2 MB as FLAC
    for i in range(0, len(noise), SR // 4):
        recorder.audio(noise[i:i + SR // 4], i / SR)
        time.sleep(0.001)  # the writer's pace, as a real stream would give it
    recorder.close()
    assert recorder.error and "cannot write the recording" in recorder.error and stopped == [1]
    entries = read_index(out / "quiet")
    assert entries, "the pieces written before the disk filled are indexed"
    for e in entries:  # and every one reads back whole
        kept, _ = sf.read(str(out / "quiet" / e["clip"]), dtype="float32")
        assert len(kept) == round(e["duration_s"] * SR)


def test_keep_all_records_the_microphone(vmic, tmp_path):
    """``record --keep all`` through sounddevice from the virtual microphone: the clip played is in the piece."""
    play, audio = quiet_then(DOGS / "ESC-50_dog_1-30344-A-0.ogg", tmp_path, before_s=2.0, after_s=2.0)
    out = tmp_path / "quiet"
    err_path = tmp_path / "record.stderr"
    with open(err_path, "w") as stderr_file:
        proc = subprocess.Popen([sys.executable, "-m", "barkwatch", "record", "--device", vmic.name, "--out",
                                 str(out), "--keep", "all", "--minutes", "0.2"],
                                cwd=REPO, env=vmic.env(), stdout=subprocess.PIPE, stderr=stderr_file, text=True)
    deadline = time.monotonic() + 90
    while "Ctrl-C stops" not in err_path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()
        time.sleep(0.05)
    vmic.play(play).wait(timeout=60)
    stdout, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, err_path.read_text()
    assert "next: barkwatch calibrate --background" in stdout
    entries = read_index(out)
    assert len(entries) == 1 and entries[0]["kind"] == "audio" and 10.0 <= entries[0]["duration_s"] <= 13.0
    kept, rate = sf.read(str(out / entries[0]["clip"]), dtype="float32")
    if rate != SR:
        import librosa
        kept = librosa.resample(kept, orig_sr=rate, target_sr=SR)
    # The played clip is in the recording: normalised cross-correlation near 1 at one lag.
    corr = np.correlate(kept, audio, mode="valid")
    energy = np.sqrt(np.convolve(kept ** 2, np.ones(len(audio)), mode="valid") * np.sum(audio ** 2))
    assert np.max(corr / np.maximum(energy, 1e-9)) > 0.9
