"""Clips of bark events from a rolling history, on real audio files: the right samples (pre-roll included), FLAC
and OGG, the length cap, the quota by size and age, a real full disk (a tiny tmpfs), and a feed that never
waits for the writer."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import fill

from barkwatch.config import ClipsConfig
from barkwatch.live import clips
from barkwatch.live.clips import ClipRecorder, clip_path

RATE = 8000
BLOCK = 1000  # samples a feed, 0.125 s
START = "2026-03-29T03:00:01.250+02:00"  # the local time of every test event's start


def chirp(seconds: float) -> np.ndarray:
    """A rising tone (50 Hz + 40 Hz/s): every instant sounds different, so a clip's samples show where in the
    stream they came from."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * (50 * t + 20 * t * t))).astype(np.float32)


def record(kind: str, id: str, offset_s: float, end_offset_s: float, start: str = START) -> dict:
    return {"event": kind, "id": id, "start": start, "offset_s": offset_s, "end_offset_s": end_offset_s}


def feed(recorder: ClipRecorder, signal: np.ndarray, from_s: float, to_s: float) -> None:
    """Feed ``signal[from_s:to_s]`` in blocks, as the listener does."""
    for first in range(int(from_s * RATE), int(to_s * RATE), BLOCK):
        recorder.feed(signal[first:min(first + BLOCK, int(to_s * RATE))], first / RATE)


def settings(**changes) -> ClipsConfig:
    return ClipsConfig(**{"pre_roll_s": 2.0, "post_roll_s": 2.0, **changes})


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def tiny_fs(tmpfs):
    return tmpfs("256k")


@pytest.mark.parametrize("fmt", ["flac", "ogg"])
def test_clip_holds_the_pre_roll_the_event_and_the_post_roll(tmp_path, fmt):
    signal = chirp(12)
    recorder = ClipRecorder(tmp_path, settings(format=fmt), RATE)
    feed(recorder, signal, 0, 6.5)  # the event starts at 5 s and is confirmed at 6.5 s
    path = recorder.start(record("bark_start", "abc123", 5.0, 6.5))
    assert path == tmp_path / "2026-03-29" / f"030001_abc123.{fmt}"
    feed(recorder, signal, 6.5, 8.5)
    recorder.end(record("bark", "abc123", 5.0, 7.0))  # 2 s of post-roll: up to 9 s, not yet fed
    feed(recorder, signal, 8.5, 12)
    assert recorder.close()
    audio, rate = sf.read(path, dtype="float32")
    assert rate == RATE and len(audio) == 6 * RATE  # 3 s to 9 s
    expected = signal[3 * RATE:9 * RATE]
    if fmt == "flac":  # lossless but for 16-bit rounding
        np.testing.assert_allclose(audio, expected, atol=1e-4)
    else:  # lossy: the shape of the chirp, in place
        assert np.corrcoef(audio, expected)[0, 1] > 0.95
        assert np.corrcoef(audio, signal[3 * RATE + 400:9 * RATE + 400])[0, 1] < 0.5  # 50 ms later it differs
    assert recorder.stats == clips.ClipStats(written=1, skipped=0, deleted=0)
    assert recorder.usage() == (1, path.stat().st_size)


def test_short_history_gaps_flush_and_the_length_cap(tmp_path):
    signal = chirp(20)
    recorder = ClipRecorder(tmp_path, settings(), RATE, max_clip_s=3.0)
    # An event 0.5 s into the stream: the pre-roll is what there is.
    feed(recorder, signal, 0, 1.5)
    young = recorder.start(record("bark_start", "young", 0.5, 1.5))
    recorder.end(record("bark", "young", 0.5, 1.0))
    # A gap in the fed audio (1.5 s to 2 s) is silence in the clip.
    feed(recorder, signal, 2.0, 4.0)
    # A long event: the first 3 s only, written as soon as they are there.
    long = recorder.start(record("bark_start", "long", 5.0, 5.0, start="2026-03-29T03:00:05.000+02:00"))
    feed(recorder, signal, 4.0, 7.0)
    # A clip the stream's end cuts short.
    cut = recorder.start(record("bark_start", "cut", 8.0, 8.0, start="2026-03-29T03:00:08.000+02:00"))
    feed(recorder, signal, 7.0, 8.5)
    wait_for(lambda: long.exists())
    recorder.end(record("bark", "long", 5.0, 15.0))  # long since written: nothing more to do
    recorder.flush()
    assert recorder.close()
    audio, _ = sf.read(young, dtype="float32")
    assert len(audio) == 3 * RATE  # 0 s to 1 s + 2 s of post-roll
    np.testing.assert_allclose(audio[:int(1.5 * RATE)], signal[:int(1.5 * RATE)], atol=1e-4)
    assert not audio[int(1.5 * RATE):2 * RATE].any()
    np.testing.assert_allclose(audio[2 * RATE:], signal[2 * RATE:3 * RATE], atol=1e-4)
    audio, _ = sf.read(long, dtype="float32")
    np.testing.assert_allclose(audio, signal[3 * RATE:6 * RATE], atol=1e-4)  # 3 s from 5 s - 2 s of pre-roll
    audio, _ = sf.read(cut, dtype="float32")
    np.testing.assert_allclose(audio, signal[6 * RATE:int(8.5 * RATE)], atol=1e-4)
    assert recorder.stats.written == 3


def test_quota_deletes_the_oldest_clips_past_the_size_limit(tmp_path):
    now = time.time()
    for i, (day, age_days) in enumerate([("2026-03-01", 5), ("2026-03-02", 4), ("2026-03-02", 3)]):
        path = tmp_path / day / f"0{i}0000_old{i}.flac"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 490_000)
        os.utime(path, (now - age_days * 86400,) * 2)
    (tmp_path / "notes.txt").write_bytes(b"\0" * 900_000)  # not a clip: neither counted nor deleted
    recorder = ClipRecorder(tmp_path, settings(max_total_mb=1.0), RATE)  # 1.47 MB: the oldest goes at start
    wait_for(lambda: recorder.stats.deleted == 1)
    assert files_under(tmp_path) == ["2026-03-02/010000_old1.flac", "2026-03-02/020000_old2.flac", "notes.txt"]
    assert recorder.usage() == (2, 980_000)
    signal = np.random.default_rng(0).uniform(-0.5, 0.5, 30 * RATE).astype(np.float32)
    feed(recorder, signal, 0, 5)
    new = recorder.start(record("bark_start", "new", 3.0, 4.0))
    recorder.end(record("bark", "new", 3.0, 4.0))
    feed(recorder, signal, 5, 7)
    recorder.close()
    assert new.stat().st_size > 60_000  # 5 s of noise: past 1 MB, so the next oldest goes
    assert files_under(tmp_path) == ["2026-03-02/020000_old2.flac", "2026-03-29/030001_new.flac", "notes.txt"]
    assert recorder.usage() == (2, 490_000 + new.stat().st_size)
    assert recorder.stats == clips.ClipStats(written=1, skipped=0, deleted=2)


def test_quota_deletes_clips_past_the_age_limit_and_empty_day_folders(tmp_path):
    now = 1_800_000_000.0
    for name, age_days in [("2026-01-01/120000_a.ogg", 40), ("2026-02-20/120000_b.flac", 10)]:
        path = tmp_path / name
        path.parent.mkdir()
        path.write_bytes(b"x")
        os.utime(path, (now - age_days * 86400,) * 2)
    ClipRecorder(tmp_path, settings(max_age_days=30), RATE, now=lambda: now).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-02-20"]
    ClipRecorder(tmp_path, settings(max_age_days=0), RATE, now=lambda: now + 365 * 86400).close()  # no limit
    assert files_under(tmp_path) == ["2026-02-20/120000_b.flac"]


def test_a_full_disk_skips_clips_with_one_warning_and_recovers(tiny_fs, caplog):
    signal = np.random.default_rng(1).uniform(-0.5, 0.5, 60 * RATE).astype(np.float32)  # noise: 2 bytes/sample
    recorder = ClipRecorder(tiny_fs / "clips", settings(pre_roll_s=0.5, post_roll_s=0.5), RATE)
    fill(tiny_fs / "filler")
    paths, t = [], 0.0
    with caplog.at_level(logging.INFO, logger="barkwatch.live.clips"):
        for n in range(3):
            if n == 2:
                wait_for(lambda: recorder.stats.skipped == 2)
                (tiny_fs / "filler").unlink()  # space returns
            feed(recorder, signal, t, t + 2)
            event = record("bark_start", f"e{n}", t + 1.0, t + 1.5,
                           start=f"2026-03-29T03:00:0{n}.000+02:00")
            paths.append(recorder.start(event))
            recorder.end(event | {"event": "bark"})
            feed(recorder, signal, t + 2, t + 3)
            t += 3
        assert recorder.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # not one per clip
    assert "030000_e0.flac: clip not written (No space left on device)" in warnings[0].getMessage()
    assert any("clips are written again (2 skipped" in r.getMessage() for r in caplog.records)
    assert files_under(tiny_fs / "clips") == ["2026-03-29/030002_e2.flac"]  # no partial file of e0 or e1
    audio, rate = sf.read(paths[2], dtype="float32")
    assert rate == RATE and len(audio) == int(1.5 * RATE)
    assert recorder.stats == clips.ClipStats(written=1, skipped=2, deleted=0)


def test_feed_start_and_end_never_wait_for_encoding_or_the_disk(tmp_path, monkeypatch):
    threads = []
    encode = clips.encode_in_child

    def slow_encode(*args):
        threads.append(threading.current_thread().name)
        time.sleep(0.5)
        return encode(*args)

    monkeypatch.setattr(clips, "encode_in_child", slow_encode)
    signal = chirp(10)
    recorder = ClipRecorder(tmp_path, settings(), RATE)
    feed(recorder, signal, 0, 4)
    began = time.perf_counter()
    for n in range(3):  # three clips queued while the writer is still on the first
        path = recorder.start(record("bark_start", f"e{n}", 3.0, 3.5, start=f"2026-03-29T03:00:0{n}.000+02:00"))
        recorder.end(record("bark", f"e{n}", 3.0, 3.5))
    feed(recorder, signal, 4, 6)  # completes all three
    assert time.perf_counter() - began < 0.25
    assert not path.exists()
    assert recorder.close()
    assert path.exists() and recorder.stats.written == 3
    assert threads == ["barkwatch-clips"] * 3


def test_clip_path_and_settings_checks(tmp_path):
    assert clip_path(tmp_path, {"start": "2026-10-25T02:30:00.500+01:00", "id": "../x"}, "ogg") == \
        tmp_path / "2026-10-25" / "023000____x.ogg"
    with pytest.raises(ValueError, match="clips.format must be flac or ogg"):
        ClipRecorder(tmp_path, settings(format="mp3"), RATE)


# libsndfile 1.2.2's Vorbis encoder handed a long clip in one call: a real segmentation fault (as before clips
# were encoded a second at a time), as the encoder command ``encoder FORMAT SAMPLERATE`` with float32 on stdin.
CRASHING_ENCODER = (sys.executable, "-c", "import io, sys, numpy as np, soundfile as sf\n"
                    "a = np.frombuffer(sys.stdin.buffer.read(), '<f4'); out = io.BytesIO()\n"
                    "with sf.SoundFile(out, 'w', int(sys.argv[2]), 1, format='OGG', subtype='VORBIS') as f:\n"
                    "    f.write(a)\n"
                    "sys.stdout.buffer.write(out.getvalue())\n")


def test_an_encoder_that_crashes_loses_that_clip_only_and_the_next_one_is_written(tmp_path, caplog):
    rate = 48000
    recorder = ClipRecorder(tmp_path, settings(format="ogg", pre_roll_s=0, post_roll_s=0), rate,
                            encoder=CRASHING_ENCODER)
    noise = (np.random.default_rng(0).standard_normal(64 * rate) * 0.1).astype(np.float32)
    seconds = iter(range(64))

    def feed_until(to_s: int) -> None:
        for second in seconds:
            recorder.feed(noise[second * rate:(second + 1) * rate], second)
            if second + 1 == to_s:
                return

    feed_until(2)
    long = recorder.start(record("bark_start", "long", 1.0, 61.0))
    feed_until(62)
    recorder.end(record("bark", "long", 1.0, 61.0))  # 60 s at 48 kHz: the crash
    short = recorder.start(record("bark_start", "short", 62.0, 63.0, start="2026-03-29T03:01:02.000+02:00"))
    feed_until(64)
    recorder.end(record("bark", "short", 62.0, 63.0))
    with caplog.at_level(logging.WARNING):
        assert recorder.close(timeout=120)
    assert not long.exists()
    assert sf.info(str(short)).duration == pytest.approx(1.0)
    assert recorder.stats == clips.ClipStats(written=1, skipped=1, deleted=0)
    assert [r.getMessage() for r in caplog.records] == [
        f"{long}: clip not written: the ogg encoder crashed (SIGSEGV); listening goes on"]


@pytest.mark.parametrize("fmt", sorted(clips.FORMATS))
def test_a_two_minute_clip_at_48khz_encodes_in_every_format_without_taking_the_process_down(fmt):
    """libsndfile 1.2.2's Vorbis encoder segfaults on a long clip written in one call; run in a child process so
    that a crash fails this test instead of the test run."""
    code = ("import io, numpy as np, soundfile as sf; from barkwatch.live.clips import encode; "
            "a = (np.random.default_rng(0).standard_normal(120 * 48000) * 0.1).astype(np.float32); "
            f"d, r = sf.read(io.BytesIO(encode(a, 48000, {fmt!r}))); print(len(d), r)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.split() == [str(120 * 48000), "48000"]
