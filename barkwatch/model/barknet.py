"""The bark network: a small convolutional classifier from a log-mel window to one bark logit.

The VAE describes a window by how well it can reconstruct it; that alone, with a linear read-out, separates
barks from a hen or a crying baby badly, even on its own training recordings (``benchmarks/quality.md``). This
network is trained for the one question that matters, "is there a bark in this window?", on the same
spectrogram the VAE sees, and its logit joins log RL and log KL in the linear classifier.

Shape, for ``[B, 1, 128 mel bands, T frames]`` in [0, 1]: four blocks of 3x3 convolution -> BatchNorm -> ReLU,
each followed by max-pooling that shrinks frequency faster than time (a bark is broadband and short, so time
resolution is worth more than frequency resolution), then the mean over frequency and the maximum over time
(a bark anywhere in the window counts the same) into one linear unit. About 60 k parameters and 8 million
multiply-adds a window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class BarkNetConfig:
    channels: tuple[int, ...] = (16, 32, 48, 64)
    pools: tuple[tuple[int, int], ...] = ((4, 2), (2, 2), (2, 2), (2, 1))  # (frequency, time) per block
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.pools) or not self.channels:
            raise ValueError("BarkNetConfig needs one pooling per block")

    def to_dict(self) -> dict:
        return asdict(self)


BARKNETS: dict[str, BarkNetConfig] = {
    "cnn": BarkNetConfig(),
    "cnn-wide": BarkNetConfig(channels=(32, 64, 96, 128)),
}


class BarkNet(nn.Module):
    """``[B, 1, F, T]`` spectrogram -> ``[B]`` bark logit (positive: a bark)."""

    def __init__(self, config: BarkNetConfig = BarkNetConfig()):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for channels, pool in zip(config.channels, config.pools):
            layers += [nn.Conv2d(previous, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True), nn.MaxPool2d(pool, ceil_mode=True)]
            previous = channels
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(previous, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)  # [B, C, F', T']
        h = h.mean(dim=2).amax(dim=2)  # mean over frequency, then the strongest moment in the window
        return self.out(self.dropout(h)).squeeze(1)
