"""The exported module: raw audio windows in, the VAE's loss terms and a bark probability out.

``Scorer`` is everything between samples and a score: log-mel features and their scaling, the VAE (decoding
the latent mean), the two loss terms RL and KL, and the linear classifier on (log RL, log KL) and, for models
trained with a bark head, the latent mean. It is what
``modelfile.save`` writes as TorchScript, so nothing outside it needs to know how features are computed.
"""

from __future__ import annotations

import torch
from torch import nn

from .classifier import LOG_FLOOR, LinearClassifier
from .features import Spectrogram
from .model import VAE, loss_terms


class Scorer(nn.Module):
    """``forward(wave[B, N]) -> (rl[B], kl[B], score[B])`` for windows of exactly ``window_samples`` samples."""

    def __init__(self, features: Spectrogram, vae: VAE, window_samples: int, classifier: LinearClassifier):
        super().__init__()
        self.features = features
        self.vae = vae
        self.window_samples = window_samples
        self.log_floor = LOG_FLOOR
        self.register_buffer("clf_mean", torch.tensor(classifier.mean, dtype=torch.float32))
        self.register_buffer("clf_std", torch.tensor(classifier.std, dtype=torch.float32))
        self.register_buffer("clf_weight", torch.tensor(classifier.weight, dtype=torch.float32))
        self.register_buffer("clf_bias", torch.tensor(classifier.bias, dtype=torch.float32))
        self.use_mu = len(classifier.mu_weight) > 0
        self.register_buffer("clf_mu_weight", torch.tensor(classifier.mu_weight or (0.0,), dtype=torch.float32))

    @torch.jit.export
    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``[B, 1, n_mels, frames]`` in [0, 1], the VAE's input."""
        if wave.dim() != 2 or wave.size(1) != self.window_samples:
            raise ValueError(
                "expected a [batch, " + str(self.window_samples) + "] float tensor of mono samples, got "
                + str(list(wave.shape))
            )
        return self.features(wave)

    @torch.jit.export
    def reconstruct(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input spectrogram, its reconstruction from the latent mean), both ``[B, 1, n_mels, frames]``."""
        x = self.spectrogram(wave)
        mu, _ = self.vae.encode(x)
        return x, self.vae.decode(mu)

    @torch.jit.export
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Spectrograms decoded from latent vectors ``z[B, latent]`` (the notebook's generation experiment)."""
        return self.vae.decode(z)

    @torch.jit.export
    def classify(self, rl: torch.Tensor, kl: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """The linear classifier's probability for given loss terms (and latent means)."""
        logs = torch.log(torch.clamp(torch.stack([rl, kl], dim=1), min=self.log_floor))
        z = torch.matmul((logs - self.clf_mean) / self.clf_std, self.clf_weight) + self.clf_bias
        if self.use_mu:
            z = z + torch.matmul(mu, self.clf_mu_weight)
        return torch.sigmoid(z)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.spectrogram(wave)
        mu, logvar = self.vae.encode(x)
        rl, kl = loss_terms(x, self.vae.decode(mu), mu, logvar)
        return rl, kl, self.classify(rl, kl, mu)
