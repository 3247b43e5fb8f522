"""The power spectrogram in numpy: torch's STFT to float rounding, and a stream's frames computed once each
giving exactly what every window alone gives."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from barkwatch.model.features import FeatureParams, LogMel
from barkwatch.model.spectrum import StreamFrames, power_spectrum

from helpers import SAMPLES

RATE = 22050


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32")
    assert rate == RATE and audio.ndim == 1
    return audio


def test_the_numpy_stft_is_torchs(audio):
    windows = np.stack([audio[s:s + RATE] for s in range(0, len(audio) - RATE, RATE // 2)])
    with torch.no_grad():
        expected = LogMel(FeatureParams(normalisation="db")).power(torch.from_numpy(windows)).numpy()
    got = power_spectrum(windows, 2048, 512)
    assert got.shape == expected.shape == (len(windows), 1025, 44) and got.dtype == np.float32
    # Relative to each window's strongest bin: the FFTs round differently, far below what the dB scale shows.
    peak = expected.max(axis=(1, 2), keepdims=True)
    assert (np.abs(got - expected).max(axis=(1, 2), keepdims=True) / peak).max() < 1e-5
    odd = power_spectrum(windows[:2, :1000], 256, 100)  # other sizes: 1 + 1000 // 100 frames
    assert odd.shape == (2, 129, 11)


@pytest.mark.parametrize("hop_frames", [1, 10, 11, 43, 50])  # overlapping by all but one frame .. not at all
def test_stream_frames_are_each_windows_own_in_any_batches_with_windows_left_out(audio, hop_frames):
    frames = StreamFrames(2048, 512, RATE)
    assert (frames.inner, frames.outer) == (2, 42)  # frames 0, 1, 42 and 43 reach past a 1 s window's ends
    starts = [512 * hop_frames * k for k in range((len(audio) - RATE) // (512 * hop_frames) + 1)][:60]
    windows = np.stack([audio[s:s + RATE] for s in starts])
    asked = [k for k in range(len(starts)) if k % 7 not in (3, 4)]  # gated windows are never asked for
    got, k = [], 0
    for size in [1, 3, 16, 2, 5] * 20:
        batch = asked[k : k + size]
        if batch:
            got.append(frames.windows([starts[b] for b in batch], windows[batch]))
        k += size
    assert np.array_equal(np.concatenate(got), power_spectrum(windows[asked], 2048, 512))


def test_stream_frames_refuse_windows_off_the_grid_or_out_of_order(audio):
    frames = StreamFrames(2048, 512, RATE)
    with pytest.raises(ValueError, match="window start 100: not on the frame grid"):
        frames.windows([100], audio[None, 100 : 100 + RATE])
    frames.windows([512 * 40], audio[None, 512 * 40 : 512 * 40 + RATE])
    with pytest.raises(ValueError, match="window start 0: before a window already served"):
        frames.windows([0], audio[None, :RATE])
    for n_fft in (4096, 2047):  # longer than the window; odd (its frames reach one sample further right)
        with pytest.raises(ValueError, match=f"n_fft {n_fft}: frames are shared for an even n_fft"):
            StreamFrames(n_fft, 512, 2048)
