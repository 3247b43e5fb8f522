"""The linear classifier on what the model measures: logistic regression on standardised (log RL, log KL), with
a jointly trained linear head the latent mean too, with a bark network its logit as a third column, and with
a YAMNet branch (``yamnet.YamnetBranch``) YAMNet's bark logit as a fourth. In numpy.

It is tiny (a few numbers and a standardisation), so it is fitted here with Newton's method instead of a
library, and its coefficients are written into the exported model, where ``scorer.Scorer`` applies the same
formula in torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# RL and KL span orders of magnitude and can reach zero; logs make the boundary linear in ratios.
LOG_FLOOR = 1e-12


@dataclass(frozen=True)
class LinearClassifier:
    """``score = sigmoid(weight . ((x - mean) / std) + mu_weight . mu + bias)`` with ``x = [log RL, log KL]``,
    or ``[log RL, log KL, bark logit]`` for a model with a bark network (three weights); a bark when
    ``score >= threshold``. ``mu_weight`` (a weight per latent dimension) is empty unless the VAE was trained
    with a linear bark head on its latent mean (``--objective joint``)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    weight: tuple[float, ...]
    bias: float
    threshold: float
    kind: str  # "logistic" (positives and negatives) or "one-class" (positives only)
    mu_weight: tuple[float, ...] = ()

    @property
    def uses_logit(self) -> bool:
        """Whether the third column, a bark network's logit, is part of the score."""
        return len(self.weight) >= 3

    @property
    def uses_yamnet(self) -> bool:
        """Whether the fourth column, a YAMNet branch's bark logit, is part of the score."""
        return len(self.weight) == 4

    def features(self, rl: np.ndarray, kl: np.ndarray, logit: np.ndarray | None = None,
                 yamnet_logit: np.ndarray | None = None) -> np.ndarray:
        x = log_terms(rl, kl)
        if self.uses_logit:
            x = np.hstack([x, np.asarray(logit, dtype=np.float64)[:, None]])
        if self.uses_yamnet:
            x = np.hstack([x, np.asarray(yamnet_logit, dtype=np.float64)[:, None]])
        return (x - np.asarray(self.mean)) / np.asarray(self.std)

    def score(self, rl: np.ndarray, kl: np.ndarray, mu: np.ndarray | None = None,
              logit: np.ndarray | None = None, yamnet_logit: np.ndarray | None = None) -> np.ndarray:
        z = self.features(rl, kl, logit, yamnet_logit) @ np.asarray(self.weight) + self.bias
        if self.mu_weight:
            z = z + np.asarray(mu, dtype=np.float64) @ np.asarray(self.mu_weight)
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return asdict(self)


def log_terms(rl: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """``[n, 2]`` array of (log RL, log KL)."""
    return np.log(np.maximum(np.stack([rl, kl], axis=1).astype(np.float64), LOG_FLOOR))


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)


def fit_logistic(
    x: np.ndarray, labels: np.ndarray, l2: float = 1e-2, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Class-balanced, lightly L2-regularised logistic regression on standardised columns of ``x``.
    Returns the columns' mean and std, the weights and the bias.

    Each class carries half the total weight, so a rare class is not ignored (the notebook's classifier,
    without this, answered "not a bark" to nearly everything).
    """
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("logistic regression needs both positives and negatives")
    mean, std = _standardisation(x)
    design = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    d = design.shape[1]
    y = labels.astype(np.float64)
    sample_w = np.where(labels, 0.5 / labels.sum(), 0.5 / (~labels).sum())
    reg = np.diag([l2] * (d - 1) + [0.0])
    beta = np.zeros(d)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        grad = design.T @ (sample_w * (p - y)) + reg @ beta
        hess = design.T @ (design * (sample_w * p * (1 - p))[:, None]) + reg + 1e-9 * np.eye(d)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return mean, std, beta[:-1], float(beta[-1])


def fit_one_class(rl: np.ndarray, kl: np.ndarray, keep: float = 0.95) -> LinearClassifier:
    """Positives only: high RL and KL mean "unlike the barks it learned". The score is a logistic of minus
    their standardised sum, shifted so that a fraction ``keep`` of the positives score at least 0.5."""
    logs = log_terms(rl, kl)
    mean, std = _standardisation(logs)
    x = (logs - mean) / std
    weight = np.array([-1.0, -1.0]) / np.sqrt(2.0)
    margin = x @ weight
    spread = max(float(margin.std()), 1e-6)
    weight = weight / spread
    bias = -float(np.quantile(margin, 1.0 - keep)) / spread
    return LinearClassifier(
        mean=tuple(mean.tolist()), std=tuple(std.tolist()), weight=tuple(weight.tolist()),
        bias=bias, threshold=0.5, kind="one-class",
    )
