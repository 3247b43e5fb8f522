"""Log-mel parity with librosa (the notebook's features) on real clips, and the window shapes."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from barkwatch.detection.audio import load_audio
from barkwatch.model.features import FeatureParams, LogMel, Spectrogram, minmax_normalise, window_samples

from helpers import DOGS, OTHERS

CLIPS = sorted(DOGS.glob("*.ogg"))[:4] + sorted(OTHERS.glob("ESC-50_*.ogg"))[::9][:4]


def librosa_logmel(y: np.ndarray) -> np.ndarray:
    """The notebook's exact call chain."""
    mel = librosa.feature.melspectrogram(y=y, sr=22050, n_mels=128, hop_length=512)
    return librosa.power_to_db(mel, ref=1.0)


@pytest.mark.parametrize("seconds", [1, 3])
def test_logmel_matches_librosa_on_real_clips(seconds):
    n = window_samples(seconds, 22050)
    waves = []
    for path in CLIPS:
        y = load_audio(path, 22050)
        start = max(0, (len(y) - n) // 2)
        waves.append(np.pad(y[start : start + n], (0, max(0, n - len(y)))))
    batch = torch.from_numpy(np.stack(waves))
    ours = LogMel()(batch).numpy()  # one batched call for all clips
    theirs = np.stack([librosa_logmel(w) for w in waves])
    diff = np.abs(ours - theirs)
    assert diff.max() <= 0.05, f"max |diff| {diff.max():.4f} dB"
    assert (diff <= 0.01).mean() >= 0.999


@pytest.mark.parametrize("seconds,frames", [(1, 44), (2, 87), (3, 130)])
def test_window_shapes(seconds, frames):
    params = FeatureParams()
    n = window_samples(seconds, params.sample_rate)
    assert params.frames(n) == frames
    out = minmax_normalise(LogMel(params)(torch.randn(3, n) * 0.1))
    assert out.shape == (3, 128, frames)
    assert out.amin() >= 0 and out.amax() <= 1
    assert torch.allclose(out.amax(dim=(1, 2)), torch.ones(3))


def test_top_db_clips_each_window_to_80_db_below_its_own_peak():
    n = window_samples(1, 22050)
    loud = torch.sin(torch.arange(n) * 0.2)
    quiet = 1e-4 * torch.randn(n)
    db = LogMel()(torch.stack([loud, quiet]))
    for row in db:
        assert row.amax() - row.amin() <= 80.0 + 1e-4


def test_digital_silence_normalises_to_zeros_not_nan():
    x = minmax_normalise(LogMel()(torch.zeros(2, window_samples(1, 22050))))
    assert torch.isfinite(x).all() and (x == 0).all()


def test_fixed_db_scale_keeps_loudness_and_maps_full_scale_to_one():
    from barkwatch.model.features import Spectrogram

    t = torch.arange(22050) / 22050
    tone = torch.sin(2 * np.pi * 1000 * t)
    db = Spectrogram(FeatureParams(normalisation="db"))
    full, quiet = db(torch.stack([tone, tone * 0.01]))[:, 0].amax(dim=(1, 2))
    assert abs(full.item() - 1.0) < 0.01  # full scale sine at the top of the scale
    assert abs((full - quiet).item() - 0.40) < 0.01  # 40 dB lower is 0.40 lower on a 100 dB scale
    mm = Spectrogram(FeatureParams())
    a, b = mm(torch.stack([tone, tone * 0.01]))
    assert torch.allclose(a, b, atol=1e-4)  # min-max scaling forgets the level


def test_unknown_normalisation_is_refused():
    with pytest.raises(ValueError, match="normalisation"):
        FeatureParams(normalisation="pcen")


def test_peak_normalisation_is_level_invariant_and_keeps_contrast():
    """Peak scaling: a window 30 dB quieter gives the same input, and a quiet steady hiss keeps its narrow range
    (min-max would stretch it to fill 0..1 like a bark)."""
    peak = Spectrogram(FeatureParams(normalisation="peak"))
    t = torch.arange(22050) / 22050.0
    tone = 0.5 * torch.sin(2 * torch.pi * 440.0 * t) * (t < 0.3)
    hiss = 0.001 * torch.randn(22050, generator=torch.Generator().manual_seed(0))
    loud, quiet = peak(torch.stack([tone + hiss, (tone + hiss) * 10 ** (-30 / 20)]))
    assert torch.allclose(loud, quiet, atol=1e-4)
    assert loud.max() == 1.0 and loud.min() >= 0.0
    def spread(x: torch.Tensor) -> float:
        return float(x.quantile(0.9) - x.quantile(0.1))

    minmax = Spectrogram(FeatureParams())
    assert spread(peak(hiss.unsqueeze(0))) < 0.5 * spread(minmax(hiss.unsqueeze(0)))
