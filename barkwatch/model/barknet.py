"""The bark network: a small convolutional classifier from a log-mel window to one bark logit.

The VAE describes a window by how well it can reconstruct it; that alone, with a linear read-out, separates
barks from a hen or a crying baby badly, even on its own training recordings (``benchmarks/quality.md``). This
network is trained for the one question that matters, "is there a bark in this window?", on the same
spectrogram the VAE sees, and its logit joins log RL and log KL in the linear classifier.

Shape, for ``[B, 1, 128 mel bands, T frames]`` in [0, 1]: four blocks of 3x3 convolution -> BatchNorm -> ReLU,
each followed by max-pooling that shrinks frequency faster than time (a bark is broadband and short, so time
resolution is worth more than frequency resolution), then the mean over frequency and the maximum over time
(a bark anywhere in the window counts the same) into one linear unit. About 60 k parameters and 8 million
multiply-adds a window. ``cnn-pcen`` puts trainable PCEN (``Pcen``) in front: it needs the fixed dB scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .features import FeatureParams

FRONTS = ("db", "pcen", "both")


@dataclass(frozen=True)
class BarkNetConfig:
    channels: tuple[int, ...] = (16, 32, 48, 64)
    pools: tuple[tuple[int, int], ...] = ((4, 2), (2, 2), (2, 2), (2, 1))  # (frequency, time) per block
    dropout: float = 0.2
    front: str = "db"  # the network's input: the fixed-dB window, PCEN of it, or both as two channels

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.pools) or not self.channels:
            raise ValueError("BarkNetConfig needs one pooling per block")
        if self.front not in FRONTS:
            raise ValueError(f"BarkNetConfig.front {self.front!r}: choose one of {', '.join(FRONTS)}")

    def to_dict(self) -> dict:
        return asdict(self)


BARKNETS: dict[str, BarkNetConfig] = {
    "cnn": BarkNetConfig(),
    "cnn-wide": BarkNetConfig(channels=(32, 64, 96, 128)),
    "cnn-pcen": BarkNetConfig(front="pcen"),
}


class Pcen(nn.Module):
    """Per-channel energy normalisation (Wang et al. 2017; trainable per band, as there) of the fixed-dB window:
    each band's energy over a smoothed running estimate of it, compressed. A steady sound (a fridge, traffic)
    sinks towards zero whatever its level, while an onset stands out by how far it rises over what came before:
    a faint bark down the street as much as a loud one in the room. A window is scored on its own, so the
    smoother starts at each band's quietest frame of the window, an estimate of the room under the sound.

    ``[B, 1, F, T]`` in [0, 1] (``normalisation="db"``, ``db_low``..``db_high``) -> ``[B, 1, F, T]``."""

    def __init__(self, bands: int, smooth: float = 0.06, params: FeatureParams = FeatureParams(normalisation="db")):
        super().__init__()
        self.smooth = smooth  # per frame: a time constant of about 0.4 s at 23 ms frames
        self.db_low, self.db_span = params.db_low, params.db_high - params.db_low
        self.log_alpha = nn.Parameter(torch.full((bands, 1), math.log(0.98)))
        self.log_delta = nn.Parameter(torch.full((bands, 1), math.log(2.0)))
        self.log_r = nn.Parameter(torch.full((bands, 1), math.log(0.5)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = torch.pow(10.0, (x[:, 0] * self.db_span + self.db_low) / 10.0)  # [B, F, T], power
        smoothed = self.smoother(energy)
        alpha, delta, r = self.log_alpha.exp().clamp(max=1.0), self.log_delta.exp(), self.log_r.exp()
        return ((energy / (1e-12 + smoothed).pow(alpha) + delta).pow(r) - delta.pow(r)).unsqueeze(1)

    def smoother(self, energy: torch.Tensor) -> torch.Tensor:
        """The running estimate M[t] = (1 - s) M[t-1] + s E[t], started at M[-1] = each band's quietest
        frame, as one product with a [T, T] matrix: M[t] = (1 - s)^(t+1) M[-1] + sum over k <= t of
        s (1 - s)^(t-k) E[k]. The same numbers as the recursion, without a step per frame."""
        frames = energy.size(-1)
        t = torch.arange(frames, device=energy.device, dtype=energy.dtype)
        lag = t.unsqueeze(0) - t.unsqueeze(1)  # lag[k, t] = t - k
        keep = 1.0 - self.smooth
        weights = torch.where(lag >= 0, self.smooth * torch.pow(keep, lag.clamp(min=0.0)), torch.zeros_like(lag))
        start = energy.amin(dim=-1, keepdim=True)  # [B, F, 1]
        return torch.matmul(energy, weights) + start * torch.pow(keep, t + 1.0)


class BlockMax(nn.Module):
    """``nn.MaxPool2d(pool, ceil_mode=True)`` (windows of ``pool`` = (frequency, time) cells, not overlapping,
    the last ones partial) as two reshapes and maxima over a contiguous axis: the same numbers, and on the
    CPU several times faster than torch's pooling kernel at these sizes (0.06 against 0.32 ms for the first
    block of one window). ``[B, C, F, T]`` -> ``[B, C, ceil(F / pool_f), ceil(T / pool_t)]``."""

    def __init__(self, pool: tuple[int, int]):
        super().__init__()
        self.pool_f, self.pool_t = int(pool[0]), int(pool[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands, frames = x.size(2), x.size(3)
        pad_f, pad_t = (-bands) % self.pool_f, (-frames) % self.pool_t
        if pad_f > 0 or pad_t > 0:  # ceil_mode: a partial window's padding never wins
            x = nn.functional.pad(x, (0, pad_t, 0, pad_f), value=float("-inf"))
        bands, frames = (bands + pad_f) // self.pool_f, (frames + pad_t) // self.pool_t
        x = x.reshape(-1, x.size(1), bands, self.pool_f, frames * self.pool_t).amax(dim=3)
        return x.reshape(-1, x.size(1), bands, frames, self.pool_t).amax(dim=4)


class BarkNet(nn.Module):
    """``[B, 1, F, T]`` spectrogram -> ``[B]`` bark logit (positive: a bark)."""

    def __init__(self, config: BarkNetConfig = BarkNetConfig(), bands: int = 128):
        super().__init__()
        self.front = config.front
        # Only a PCEN front has parameters: networks without one keep the weights they always had.
        self.pcen = Pcen(bands) if config.front != "db" else nn.Identity()
        layers: list[nn.Module] = []
        previous = 2 if config.front == "both" else 1
        for channels, pool in zip(config.channels, config.pools):
            layers += [nn.Conv2d(previous, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True), BlockMax(pool)]
            previous = channels
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(previous, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.front == "pcen":
            x = self.pcen(x)
        elif self.front == "both":
            x = torch.cat([x, self.pcen(x)], dim=1)
        h = self.blocks(x)  # [B, C, F', T']
        h = h.mean(dim=2).amax(dim=2)  # mean over frequency, then the strongest moment in the window
        return self.out(self.dropout(h)).squeeze(1)
