"""The streaming engine on real audio: windows every hop whatever the block sizes, resampling and channel
mixing, the energy gate, streams shorter than a window, and constant memory."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from barkwatch.model import modelfile
from barkwatch.detection.audio import load_audio
from barkwatch.detection.engine import Engine, EngineSettings, level_dbfs

from helpers import DOGS

RATE = 22050


@pytest.fixture(scope="module")
def model(random_model):
    return modelfile.load(random_model)


@pytest.fixture(scope="module")
def bark():
    return load_audio(sorted(DOGS.glob("*.ogg"))[0], RATE)  # 5 s of real barking


def run(engine: Engine, audio: np.ndarray, blocks) -> list:
    out, i = [], 0
    for size in blocks:
        out += engine.feed(audio[i : i + size])
        i += size
    out += engine.feed(audio[i:])
    return out + engine.finish()


def test_windows_every_hop_and_scores_equal_to_the_model_whatever_the_block_sizes(model, bark):
    settings = EngineSettings(hop_s=0.25, gate_dbfs=-200)
    whole = run(Engine(model, RATE, settings), bark, [])
    rng = np.random.default_rng(0)
    pieces = run(Engine(model, RATE, settings), bark, rng.integers(1, 5000, 60))
    assert [w.start_s for w in whole] == [w.start_s for w in pieces]
    starts = np.array([w.start_s for w in whole])
    np.testing.assert_allclose(np.diff(starts), 0.25, atol=1.01 / RATE)  # whole samples, and no drift:
    np.testing.assert_allclose(starts, 0.25 * np.arange(len(starts)), atol=0.51 / RATE)
    assert whole[-1].end_s >= len(bark) / RATE  # the tail is covered
    np.testing.assert_allclose([w.score for w in whole], [w.score for w in pieces], atol=1e-6)
    # The engine's numbers are the model's own on the same windows.
    offsets = [0, 5513, 11025]  # round(k * 5512.5)
    direct = model.module(torch.from_numpy(np.stack([bark[o : o + RATE] for o in offsets])))
    for i, o in enumerate(offsets):
        assert whole[i].start_s == pytest.approx(o / RATE)
        assert whole[i].rl == pytest.approx(float(direct[0][i]), rel=1e-5)
        assert whole[i].score == pytest.approx(float(direct[2][i]), abs=1e-6)


def test_windows_start_on_the_model_frame_grid_nearest_each_hop_and_never_drift(model, bark):
    """With the model's STFT grid known (every trained model file records it), windows start on it, the
    point nearest k x hop, so that successive windows share frames; a scorer without one keeps exact starts."""
    gridded = replace(model, metadata={**model.metadata, "features": {"n_fft": 2048, "hop_length": 512}})
    engine = Engine(gridded, RATE, EngineSettings(hop_s=0.25, gate_dbfs=-200))
    windows = run(engine, bark, [3000] * 20)
    starts = np.array([round(w.start_s * RATE) for w in windows])
    assert (starts % 512 == 0).all() and len(set(starts)) == len(starts)
    assert np.abs(starts - 5512.5 * np.arange(len(starts))).max() <= 256
    day = 4 * 86400  # windows in a day at 0.25 s
    assert engine._start(day) % 512 == 0 and abs(engine._start(day) - day * 5512.5) <= 256
    direct = model.module(torch.from_numpy(np.stack([bark[s : s + RATE] for s in starts[:3]])))
    assert [w.score for w in windows[:3]] == pytest.approx(direct[2].tolist(), abs=1e-6)


def test_resamples_and_mixes_any_rate_and_channel_count(model):
    rate = 44100
    stereo = np.zeros((6 * rate, 2), dtype=np.float32)
    t = np.arange(int(0.5 * rate)) / rate
    burst = (0.5 * np.sin(2 * np.pi * 600 * t)).astype(np.float32)
    stereo[4 * rate : int(4.5 * rate), 1] = burst  # only on the right channel, at 4.0-4.5 s
    windows = run(Engine(model, rate, EngineSettings(gate_dbfs=-200)), stereo, [4410] * 40)
    loudest = max(windows, key=lambda w: w.level_dbfs)
    assert 3.5 - 1e-9 <= loudest.start_s <= 4.0 + 1e-9
    assert loudest.level_dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2) / 2 * math.sqrt(0.5)), abs=0.5)
    left = run(Engine(model, rate, EngineSettings(gate_dbfs=-200, channel=0)), stereo, [4410] * 40)
    assert max(w.level_dbfs for w in left) == -120.0  # the left channel is silent


def test_gate_skips_the_network_on_quiet_windows(model, bark):
    audio = np.concatenate([np.zeros(3 * RATE, dtype=np.float32), bark])
    windows = run(Engine(model, RATE, EngineSettings(gate_dbfs=-50)), audio, [2205] * 50)
    quiet = [w for w in windows if w.level_dbfs < -50]
    loud = [w for w in windows if w.level_dbfs >= -50]
    assert quiet and loud
    assert all(w.score == 0 and math.isnan(w.rl) and math.isnan(w.kl) for w in quiet)
    assert all(0 < w.score < 1 and w.rl > 0 for w in loud)


def test_a_stream_shorter_than_one_window_is_scored_once(model, bark):
    windows = run(Engine(model, RATE, EngineSettings(gate_dbfs=-200)), bark[: RATE // 3], [1000])
    assert len(windows) == 1 and windows[0].start_s == 0 and windows[0].end_s == 1.0
    assert run(Engine(model, RATE), np.zeros(0, dtype=np.float32), []) == []


@pytest.mark.slow
def test_memory_stays_constant_over_a_long_stream(model):
    engine = Engine(model, 48000, EngineSettings(gate_dbfs=-50))
    block = np.zeros((4800, 2), dtype=np.float32)  # 0.1 s stereo at 48 kHz
    count = 0
    last = None
    for _ in range(36000):  # one hour
        windows = engine.feed(block)
        count += len(windows)
        last = windows[-1] if windows else last
        assert len(engine._buffer) <= RATE + 2400
    assert count == pytest.approx(3600 / 0.25, abs=5)
    assert last.start_s == pytest.approx(0.25 * (count - 1), abs=1 / RATE)  # no drift after an hour


def test_level_dbfs():
    assert level_dbfs(np.ones(100, dtype=np.float32)) == pytest.approx(0.0)
    assert level_dbfs(np.zeros(100, dtype=np.float32)) == -120.0
    sine = np.sin(np.linspace(0, 200 * np.pi, 10000, endpoint=False)).astype(np.float32)
    assert level_dbfs(sine) == pytest.approx(-3.01, abs=0.01)


def test_reads_a_real_file_in_blocks(model, tmp_path):
    path = sorted(DOGS.glob("*.ogg"))[1]
    info = sf.info(str(path))
    engine = Engine(model, info.samplerate, EngineSettings(gate_dbfs=-200))
    windows = []
    for block in sf.blocks(str(path), blocksize=4096, dtype="float32", always_2d=True):
        windows += engine.feed(block)
    windows += engine.finish()
    assert len(windows) == math.ceil((info.duration - 1.0) / 0.25) + 1
