"""The exported module: raw audio windows in, the VAE's loss terms and a bark probability out.

``Scorer`` is everything between samples and a score: log-mel features and their scaling, then one or more
``Member``\\ s, each a VAE (decoding the latent mean) with its two loss terms RL and KL and its linear
classifier on (log RL, log KL) and, for models trained with a bark head, the latent mean. With several members
(an ensemble, ``barkwatch train --ensemble``) the score is the mean of their probabilities and RL and KL are
their means. It is what ``modelfile.save`` writes as TorchScript, so nothing outside it needs to know how
features are computed.

A one-member model may carry a YAMNet branch (``yamnet.YamnetBranch``): YAMNet's bark logit is the
classifier's fourth column. It costs 15-50 times the rest, so it runs as a cascade: only on windows where
the classifier's logit without it (YAMNet's logit taken as 0) reaches ``cascade_logit``, chosen on validation
so that no window the full model scores above the model's thresholds is left out; the others are scored with
YAMNet's logit at ``YAMNET_FLOOR``, which the classifier reads as "no dog".
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .classifier import LOG_FLOOR, LinearClassifier
from .barknet import BarkNet
from .features import Spectrogram
from .vae import VAE, loss_terms
from .yamnet import YamnetBranch

# YAMNet's bark logit for windows the cascade does not run it on: P(Dog) = P(Bark) = 2e-9.
YAMNET_FLOOR = -20.0


class Member(nn.Module):
    """One VAE, optionally a bark network, and the linear classifier on what they measure."""

    def __init__(self, vae: VAE, classifier: LinearClassifier, barknet: BarkNet | None = None):
        super().__init__()
        if classifier.uses_logit != (barknet is not None):
            raise ValueError("a classifier with a logit weight needs its bark network, and only then")
        self.vae = vae
        self.use_barknet = barknet is not None
        self.use_yamnet = classifier.uses_yamnet
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
    def classify(self, rl: torch.Tensor, kl: torch.Tensor, mu: torch.Tensor, logit: torch.Tensor,
                 yamnet_logit: torch.Tensor) -> torch.Tensor:
        """The linear classifier's probability for given loss terms (and latent means, and bark logits)."""
        return torch.sigmoid(self.decision(rl, kl, mu, logit, yamnet_logit))

    @torch.jit.export
    def decision(self, rl: torch.Tensor, kl: torch.Tensor, mu: torch.Tensor, logit: torch.Tensor,
                 yamnet_logit: torch.Tensor) -> torch.Tensor:
        """The linear classifier's logit."""
        logs = torch.log(torch.clamp(torch.stack([rl, kl], dim=1), min=self.log_floor))
        if self.use_barknet:
            logs = torch.cat([logs, logit.unsqueeze(1)], dim=1)
        if self.use_yamnet:
            logs = torch.cat([logs, yamnet_logit.unsqueeze(1)], dim=1)
        z = torch.matmul((logs - self.clf_mean) / self.clf_std, self.clf_weight) + self.clf_bias
        if self.use_mu:
            z = z + torch.matmul(mu, self.clf_mu_weight)
        return z

    @torch.jit.export
    def measure(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rl, kl, mu, bark logit)`` of spectrograms (the logit zeros without a bark network)."""
        mu, logvar = self.vae.encode(x)
        rl, kl = loss_terms(x, self.vae.decode(mu), mu, logvar)
        logit = self.barknet(x) if self.use_barknet else torch.zeros_like(rl)
        return rl, kl, mu, logit

    def forward(self, x: torch.Tensor, yamnet_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rl, kl, mu, logit = self.measure(x)
        return rl, kl, self.classify(rl, kl, mu, logit, yamnet_logit)


class _NoBranch(nn.Module):
    """What a Scorer without a YAMNet branch holds in its place: the same methods, never called."""

    @torch.jit.export
    def patch(self, wave: torch.Tensor) -> torch.Tensor:
        return wave

    @torch.jit.export
    def patch_logit(self, patch: torch.Tensor) -> torch.Tensor:
        return torch.zeros(patch.size(0), device=patch.device)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.patch_logit(wave)


class Scorer(nn.Module):
    """``forward(wave[B, N]) -> (rl[B], kl[B], score[B])`` for windows of exactly ``window_samples`` samples.

    ``Scorer(features, vae, window_samples, classifier[, barknet])`` for one model;
    ``Scorer.ensemble(features, [(vae, classifier, barknet or None), ...], window_samples)`` for several
    averaged.
    """

    def __init__(self, features: Spectrogram, vae: VAE | None, window_samples: int,
                 classifier: LinearClassifier | None = None, barknet: BarkNet | None = None,
                 members: Sequence[Member] = (), yamnet: YamnetBranch | None = None,
                 cascade_logit: float = float("-inf")):
        super().__init__()
        self.features = features
        if vae is not None:
            assert classifier is not None, "a VAE needs its classifier"
            members = [Member(vae, classifier, barknet)]
        if not members:
            raise ValueError("a Scorer needs at least one VAE")
        if any(m.use_yamnet != (yamnet is not None) for m in members):
            raise ValueError("a classifier with a YAMNet weight needs the YAMNet branch, and only then")
        if yamnet is not None and (len(members) != 1 or not members[0].use_barknet):
            raise ValueError("a YAMNet branch goes beside one VAE with a bark network (not an ensemble)")
        self.members = nn.ModuleList(members)
        self.window_samples = window_samples
        self.use_yamnet = yamnet is not None
        # TorchScript compiles every path, so a model without the branch holds a stand-in that is never called.
        self.yamnet = yamnet if yamnet is not None else _NoBranch()
        self.cascade_logit = float(cascade_logit)
        self.yamnet_floor = YAMNET_FLOOR

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
        return self.score_spectrogram(self.spectrogram(wave), wave)

    def score_spectrogram(self, x: torch.Tensor, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rl, kl, score)`` of normalised log-mel windows ``[B, 1, n_mels, frames]`` (and, for the YAMNet
        branch, the same windows' samples ``[B, N]``)."""
        if self.use_yamnet:
            return self.score_cascade(x, wave)
        rl = torch.zeros(x.size(0), device=x.device)
        kl = torch.zeros_like(rl)
        score = torch.zeros_like(rl)
        for member in self.members:
            m_rl, m_kl, m_score = member(x, torch.zeros_like(rl))  # no YAMNet logit to give
            rl, kl, score = rl + m_rl, kl + m_kl, score + m_score
        n = float(len(self.members))
        return rl / n, kl / n, score / n

    def score_cascade(self, x: torch.Tensor, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One member and the YAMNet branch, the branch only on windows whose logit without it passes the cascade."""
        rl = torch.zeros(x.size(0), device=x.device)
        score = rl
        for member in self.members:  # exactly one (checked in __init__); TorchScript iterates a ModuleList
            rl, kl, mu, logit = member.measure(x)
            # The classifier's logit with YAMNet's at 0: what the small networks say before YAMNet is asked.
            partial = member.decision(rl, kl, mu, logit, torch.zeros_like(rl))
            chosen = torch.nonzero(partial >= self.cascade_logit).squeeze(1)  # may be empty: YAMNet scores none
            patches = self.yamnet.patch(wave).index_select(0, chosen)
            yamnet_logit = torch.full_like(rl, self.yamnet_floor).index_copy(0, chosen, self.yamnet.patch_logit(patches))
            score = member.classify(rl, kl, mu, logit, yamnet_logit)
        return rl, kl, score


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
        return self.scorer.score_spectrogram(self.scorer.features.from_power(power), power)


class PowerWaveScorer(PowerScorer):
    """``PowerScorer`` for a model with a YAMNet branch: the power spectrogram for the bark network and the
    VAE, and the window's samples ``[B, N]`` for YAMNet, which computes its own features from them."""

    def forward(self, power: torch.Tensor, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.scorer.score_spectrogram(self.scorer.features.from_power(power), wave)
