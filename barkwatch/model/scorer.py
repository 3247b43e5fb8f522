"""The exported module: raw audio windows in, the VAE's loss terms and a bark probability out.

``Scorer`` is everything between samples and a score: log-mel features and their scaling, then one or more
``Member``\\ s, each a VAE (decoding the latent mean) with its two loss terms RL and KL and its linear
classifier on (log RL, log KL) and, for models trained with a bark head, the latent mean. With several members
(an ensemble, ``barkwatch train --ensemble``) the score is the mean of their probabilities and RL and KL are
their means. It is what ``modelfile.save`` writes as TorchScript, so nothing outside it needs to know how
features are computed.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .classifier import LOG_FLOOR, LinearClassifier
from .barknet import BarkNet
from .features import Spectrogram
from .vae import VAE, loss_terms


class Member(nn.Module):
    """One VAE, optionally a bark network, and the linear classifier on what they measure."""

    def __init__(self, vae: VAE, classifier: LinearClassifier, barknet: BarkNet | None = None):
        super().__init__()
        if classifier.uses_logit != (barknet is not None):
            raise ValueError("a classifier with a logit weight needs its bark network, and only then")
        self.vae = vae
        self.use_barknet = barknet is not None
        # TorchScript needs a module either way; Identity is never called without a bark network.
        self.barknet = barknet if barknet is not None else nn.Identity()
        self.log_floor = LOG_FLOOR
        self.register_buffer("clf_mean", torch.tensor(classifier.mean, dtype=torch.float32))
        self.register_buffer("clf_std", torch.tensor(classifier.std, dtype=torch.float32))
        self.register_buffer("clf_weight", torch.tensor(classifier.weight, dtype=torch.float32))
        self.register_buffer("clf_bias", torch.tensor(classifier.bias, dtype=torch.float32))
        self.use_mu = len(classifier.mu_weight) > 0
        self.register_buffer("clf_mu_weight", torch.tensor(classifier.mu_weight or (0.0,), dtype=torch.float32))

    @torch.jit.export
    def classify(self, rl: torch.Tensor, kl: torch.Tensor, mu: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
        """The linear classifier's probability for given loss terms (and latent means, and bark logits)."""
        logs = torch.log(torch.clamp(torch.stack([rl, kl], dim=1), min=self.log_floor))
        if self.use_barknet:
            logs = torch.cat([logs, logit.unsqueeze(1)], dim=1)
        z = torch.matmul((logs - self.clf_mean) / self.clf_std, self.clf_weight) + self.clf_bias
        if self.use_mu:
            z = z + torch.matmul(mu, self.clf_mu_weight)
        return torch.sigmoid(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.vae.encode(x)
        rl, kl = loss_terms(x, self.vae.decode(mu), mu, logvar)
        logit = self.barknet(x) if self.use_barknet else torch.zeros_like(rl)
        return rl, kl, self.classify(rl, kl, mu, logit)


class Scorer(nn.Module):
    """``forward(wave[B, N]) -> (rl[B], kl[B], score[B])`` for windows of exactly ``window_samples`` samples.

    ``Scorer(features, vae, window_samples, classifier[, barknet])`` for one model;
    ``Scorer.ensemble(features, [(vae, classifier, barknet or None), ...], window_samples)`` for several
    averaged.
    """

    def __init__(self, features: Spectrogram, vae: VAE | None, window_samples: int,
                 classifier: LinearClassifier | None = None, barknet: BarkNet | None = None,
                 members: Sequence[Member] = ()):
        super().__init__()
        self.features = features
        if vae is not None:
            assert classifier is not None, "a VAE needs its classifier"
            members = [Member(vae, classifier, barknet)]
        if not members:
            raise ValueError("a Scorer needs at least one VAE")
        self.members = nn.ModuleList(members)
        self.window_samples = window_samples

    @classmethod
    def ensemble(cls, features: Spectrogram, models: Sequence[tuple[VAE, LinearClassifier, BarkNet | None]],
                 window_samples: int) -> Scorer:
        return cls(features, None, window_samples, members=[Member(*m) for m in models])

    @torch.jit.export
    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel ``[B, 1, n_mels, frames]`` in [0, 1], the VAEs' input."""
        if wave.dim() != 2 or wave.size(1) != self.window_samples:
            raise ValueError(
                "expected a [batch, " + str(self.window_samples) + "] float tensor of mono samples, got "
                + str(list(wave.shape))
            )
        return self.features(wave)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.score_spectrogram(self.spectrogram(wave))

    def score_spectrogram(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rl, kl, score)`` of normalised log-mel windows ``[B, 1, n_mels, frames]``."""
        rl = torch.zeros(x.size(0), device=x.device)
        kl = torch.zeros_like(rl)
        score = torch.zeros_like(rl)
        for member in self.members:
            m_rl, m_kl, m_score = member(x)
            rl, kl, score = rl + m_rl, kl + m_kl, score + m_score
        n = float(len(self.members))
        return rl / n, kl / n, score / n


class PowerScorer(nn.Module):
    """A ``Scorer`` that starts from the power spectrogram (``LogMel.power``'s output, ``[B, n_fft // 2 + 1,
    frames]``) instead of samples: what the ONNX export holds. The STFT is done before it, in numpy
    (``spectrum.power_spectrum``), because ONNX Runtime's own took 1.4 of the 2.4 ms a window cost there, and
    numpy's takes 0.45 (0.19 when the engine computes each frame of a stream once); the mel bank and everything
    after stay inside the file."""

    def __init__(self, scorer: Scorer):
        super().__init__()
        self.scorer = scorer

    def forward(self, power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.scorer.score_spectrogram(self.scorer.features.from_power(power))
