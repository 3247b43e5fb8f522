"""The convolutional VAE and its two loss terms. Only the network: no audio, no training loop.

Preset ``seed`` is the research notebook's network layer for layer: five Conv2d(3x3) -> ReLU -> BatchNorm2d
blocks with 512, 256, 128, 64, 32 channels and strides 2, 2, 2, 2, 1; Flatten -> Linear -> BatchNorm1d whose
output halves are mu and logvar (latent 128); a mirrored decoder of ConvTranspose2d -> ReLU -> BatchNorm2d
blocks ending in one channel (ReLU and BatchNorm2d, no sigmoid). Each transposed convolution's output padding is
computed so the decoder returns exactly the encoder's input shape, 128 x T for any window length.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class VAEConfig:
    """Shape of the network: encoder channels and strides (the decoder mirrors them) and latent size."""

    channels: tuple[int, ...]
    strides: tuple[int, ...]
    latent: int
    kernel: int = 3
    # Pool the last feature map over time (mean and max) before the latent: a bark anywhere in the window then
    # looks the same to the latent, instead of the flattening layer learning each time position separately.
    time_pooling: bool = False

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.strides) or not self.channels:
            raise ValueError("VAEConfig needs one stride per encoder channel count")

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, VAEConfig] = {
    # The notebook's network: about 4 M parameters, most compute in the 512-channel first layer.
    "seed": VAEConfig(channels=(512, 256, 128, 64, 32), strides=(2, 2, 2, 2, 1), latent=128),
    # A light network of the same shape family (about 100x less compute), for small machines and quick tests.
    "small": VAEConfig(channels=(16, 32, 64, 64), strides=(2, 2, 2, 2), latent=32),
    # The small network with its encoder pooled over time (see VAEConfig.time_pooling).
    "pooled": VAEConfig(channels=(16, 32, 64, 64), strides=(2, 2, 2, 2), latent=32, time_pooling=True),
    # Twice the small network's channels (about 4x its compute), for when accuracy is worth a few ms a window.
    "medium": VAEConfig(channels=(32, 64, 128, 128), strides=(2, 2, 2, 2), latent=64),
}


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class TimePool(nn.Module):
    """``[B, C, F, T]`` -> ``[B, 2 * C * F]``: the mean and the maximum over time of every channel and band."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=3), x.amax(dim=3)], dim=1).flatten(1)


class VAE(nn.Module):
    """Input ``[B, 1, n_mels, n_frames]`` in [0, 1]; ``forward`` returns ``(x_hat, mu, logvar)``."""

    def __init__(self, config: VAEConfig, n_mels: int, n_frames: int):
        super().__init__()
        k, pad = config.kernel, config.kernel // 2
        self.latent = config.latent

        # Spatial shape before each encoder block, and after the last one.
        shapes = [(n_mels, n_frames)]
        for s in config.strides:
            h, w = shapes[-1]
            shapes.append((_conv_out(h, k, s, pad), _conv_out(w, k, s, pad)))
        last_c = config.channels[-1]
        last_h, last_w = shapes[-1]
        flat = last_c * last_h * last_w

        enc: list[nn.Module] = []
        c_in = 1
        for c, s in zip(config.channels, config.strides):
            enc += [nn.Conv2d(c_in, c, k, stride=s, padding=pad), nn.ReLU(), nn.BatchNorm2d(c)]
            c_in = c
        if config.time_pooling:
            enc += [TimePool(), nn.Linear(2 * last_c * last_h, 2 * config.latent)]
        else:
            enc += [nn.Flatten(), nn.Linear(flat, 2 * config.latent)]
        enc += [nn.BatchNorm1d(2 * config.latent)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [
            nn.Linear(config.latent, flat),
            nn.BatchNorm1d(flat),
            nn.Unflatten(1, (last_c, last_h, last_w)),
        ]
        for i in reversed(range(len(config.channels))):
            c_out = config.channels[i - 1] if i > 0 else 1
            s = config.strides[i]
            (in_h, in_w), (out_h, out_w) = shapes[i + 1], shapes[i]
            extra = (out_h - ((in_h - 1) * s - 2 * pad + k), out_w - ((in_w - 1) * s - 2 * pad + k))
            dec += [
                nn.ConvTranspose2d(config.channels[i], c_out, k, stride=s, padding=pad, output_padding=extra),
                nn.ReLU(),
                nn.BatchNorm2d(c_out),
            ]
        self.decoder = nn.Sequential(*dec)

    def match_output_scale(self, mean: float, std: float) -> None:
        """Start the output BatchNorm at the data's mean and spread instead of (0, 1).

        The decoder ends in BatchNorm2d(1), whose output has unit variance until its scale is learned; on
        spectrograms in [0, 1] that costs hundreds of steps of pure range-finding at a stable learning rate
        (the notebook's 1e-2 gets there faster but then diverges in eval mode). Same layers, better start.
        """
        out = self.decoder[-1]
        with torch.no_grad():
            out.weight.fill_(std)
            out.bias.fill_(mean)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return h[:, : self.latent], h[:, self.latent :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu  # evaluation decodes the mean, as the notebook's scoring did
        return self.decode(z), mu, logvar


def loss_terms(
    x: torch.Tensor, x_hat: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window reconstruction loss RL (mean squared error over the spectrogram) and KL (0.5 * sum over latent)."""
    rl = (x_hat - x).square().flatten(1).mean(dim=1)
    kl = 0.5 * (logvar.exp() - logvar - 1.0 + mu.square()).sum(dim=1)
    return rl, kl


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
