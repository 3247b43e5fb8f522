"""Log-mel spectrograms in torch, exactly as the research notebook computed them with librosa.

The notebook's features are ``librosa.feature.melspectrogram`` (22,050 Hz, n_fft 2048, hop 512, Hann window,
centred frames with zero padding, power 2, 128 Slaney mel bands) followed by ``librosa.power_to_db(ref=1.0)``
(amin 1e-10, top_db 80) and a per-window min-max scaling to [0, 1]. Here the same arithmetic runs in torch on
a batch of waveforms, on any device, with the mel filter bank stored as a buffer: once a model is exported the
bank travels inside the file, so the features a model was trained on are the features it is served with.

Min-max scaling throws away how loud a window is: a faint hiss in a silent room fills [0, 1] just as a bark
does. ``normalisation="db"`` keeps it: a fixed scale from -100 dBFS (0) to full scale (1), where a full-scale
sine reads 40 dB with ``ref`` 1.0, and no per-window top_db.

``normalisation="peak"`` is level-invariant without min-max's stretching: each window's dB relative to its
own loudest cell, the 80 dB below it mapped to 0..1. A quiet bark then looks like a loud one, while a faint
steady hiss stays what it is: a narrow range near the top, nothing like a bark's contrast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


NORMALISATIONS = ("minmax", "db", "peak")


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
    normalisation: str = "minmax"  # "db": a fixed scale, db_low..db_high (in dB re ``ref``) to 0..1; "peak"
    db_low: float = -60.0  # -100 dBFS: a full-scale sine is +40 dB re 1.0
    db_high: float = 40.0

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation {self.normalisation!r}: choose one of {', '.join(NORMALISATIONS)}")

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
        # The fixed dB scale needs absolute levels; top_db would make them depend on the window's peak.
        self.top_db = params.top_db if params.normalisation != "db" else 0.0
        self.ref_db = 10.0 * torch.log10(torch.tensor(max(params.amin, params.ref))).item()
        bank = librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels)
        self.register_buffer("mel_basis", torch.from_numpy(bank).float())
        # librosa's "hann" is scipy's periodic Hann, which is torch's default.
        self.register_buffer("window", torch.hann_window(params.n_fft))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.db(self.power(wave))

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveforms ``[B, N]`` -> power spectrogram ``[B, n_fft // 2 + 1, 1 + N // hop]``: centred frames with
        zeros beyond the window's ends, periodic Hann, ``|STFT|^2`` (``spectrum.power_spectrum`` in numpy)."""
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",  # librosa >= 0.10 pads with zeros
            return_complex=True,
        )
        return spec.real.square() + spec.imag.square()

    def db(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectrogram -> log-mel power in dB ``[B, n_mels, frames]``."""
        mel = torch.matmul(self.mel_basis, power)
        db = 10.0 * torch.log10(torch.clamp(mel, min=self.amin)) - self.ref_db
        # top_db clips relative to the loudest value of each window (librosa: of the whole array it is given).
        if self.top_db <= 0.0:
            return db
        peak = db.amax(dim=(-2, -1), keepdim=True)
        return torch.maximum(db, peak - self.top_db)


def minmax_normalise(x: torch.Tensor) -> torch.Tensor:
    """Scale each window ``[..., F, T]`` to [0, 1] by its own minimum and maximum, as the notebook did.

    A window with no range at all (digital silence) maps to zeros instead of dividing by zero.
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / torch.clamp(hi - lo, min=1e-6)


class Spectrogram(nn.Module):
    """Waveforms ``[B, N]`` -> the network's input ``[B, 1, n_mels, frames]`` in [0, 1]: log-mel, then the
    normalisation ``params`` name. Training and the exported model both go through this one module."""

    def __init__(self, params: FeatureParams = FeatureParams()):
        super().__init__()
        self.logmel = LogMel(params)
        self.minmax = params.normalisation == "minmax"
        self.peak = params.normalisation == "peak"
        self.top_db = params.top_db
        self.db_low = params.db_low
        self.db_high = params.db_high

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.from_power(self.logmel.power(wave))

    def from_power(self, power: torch.Tensor) -> torch.Tensor:
        """The same from the power spectrogram on (``LogMel.power``): what the ONNX export starts from."""
        db = self.logmel.db(power)
        if self.minmax:
            return minmax_normalise(db).unsqueeze(1)
        if self.peak:  # LogMel already floors at peak - top_db
            peak = db.amax(dim=(-2, -1), keepdim=True)
            return ((db - peak) / self.top_db + 1.0).unsqueeze(1)
        return ((db - self.db_low) / (self.db_high - self.db_low)).clamp(0.0, 1.0).unsqueeze(1)
