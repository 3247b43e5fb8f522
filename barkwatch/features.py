"""Log-mel spectrograms in torch, exactly as the research notebook computed them with librosa.

The notebook's features are ``librosa.feature.melspectrogram`` (22,050 Hz, n_fft 2048, hop 512, Hann window,
centred frames with zero padding, power 2, 128 Slaney mel bands) followed by ``librosa.power_to_db(ref=1.0)``
(amin 1e-10, top_db 80) and a per-window min-max scaling to [0, 1]. Here the same arithmetic runs in torch on
a batch of waveforms, on any device, with the mel filter bank stored as a buffer: once a model is exported the
bank travels inside the file, so the features a model was trained on are the features it is served with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureParams:
    """Everything that defines the log-mel features; recorded in every exported model."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    ref: float = 1.0
    amin: float = 1e-10
    top_db: float = 80.0

    def frames(self, n_samples: int) -> int:
        """Number of centred STFT frames for ``n_samples`` of audio (44, 87, 130 for 1, 2, 3 s)."""
        return 1 + n_samples // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)


def window_samples(window_s: float, sample_rate: int) -> int:
    """Samples in one analysis window: 22,050 per second at the notebook's rate."""
    return int(round(window_s * sample_rate))


class LogMel(nn.Module):
    """Waveforms ``[B, N]`` -> log-mel power in dB ``[B, n_mels, 1 + N // hop]``, librosa's definition."""

    def __init__(self, params: FeatureParams = FeatureParams()):
        super().__init__()
        import librosa  # only needed to build the bank; exported models carry it as a buffer

        self.n_fft = params.n_fft
        self.hop_length = params.hop_length
        self.amin = params.amin
        self.top_db = params.top_db
        self.ref_db = 10.0 * torch.log10(torch.tensor(max(params.amin, params.ref))).item()
        bank = librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels)
        self.register_buffer("mel_basis", torch.from_numpy(bank).float())
        # librosa's "hann" is scipy's periodic Hann, which is torch's default.
        self.register_buffer("window", torch.hann_window(params.n_fft))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",  # librosa >= 0.10 pads with zeros
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_basis, power)
        db = 10.0 * torch.log10(torch.clamp(mel, min=self.amin)) - self.ref_db
        # top_db clips relative to the loudest value of each window (librosa: of the whole array it is given).
        peak = db.amax(dim=(-2, -1), keepdim=True)
        return torch.maximum(db, peak - self.top_db)


def minmax_normalise(x: torch.Tensor) -> torch.Tensor:
    """Scale each window ``[..., F, T]`` to [0, 1] by its own minimum and maximum, as the notebook did.

    A window with no range at all (digital silence) maps to zeros instead of dividing by zero.
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / torch.clamp(hi - lo, min=1e-6)
