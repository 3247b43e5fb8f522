"""The linear RL-KL classifier: logistic regression on standardised (log RL, log KL), in numpy.

It is tiny (three numbers and a standardisation), so it is fitted here with Newton's method instead of a
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
    """``score = sigmoid(weight . ((log [RL, KL] - mean) / std) + bias)``; bark when ``score >= threshold``."""

    mean: tuple[float, float]
    std: tuple[float, float]
    weight: tuple[float, float]
    bias: float
    threshold: float
    kind: str  # "logistic" (positives and negatives) or "one-class" (positives only)

    def features(self, rl: np.ndarray, kl: np.ndarray) -> np.ndarray:
        return (log_terms(rl, kl) - np.asarray(self.mean)) / np.asarray(self.std)

    def score(self, rl: np.ndarray, kl: np.ndarray) -> np.ndarray:
        z = self.features(rl, kl) @ np.asarray(self.weight) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LinearClassifier:
        return cls(
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            weight=tuple(d["weight"]),
            bias=float(d["bias"]),
            threshold=float(d["threshold"]),
            kind=str(d["kind"]),
        )


def log_terms(rl: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """``[n, 2]`` array of (log RL, log KL)."""
    return np.log(np.maximum(np.stack([rl, kl], axis=1).astype(np.float64), LOG_FLOOR))


def _standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)


def fit_logistic(
    rl: np.ndarray, kl: np.ndarray, labels: np.ndarray, l2: float = 1e-2, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Class-balanced, lightly L2-regularised logistic regression. Returns mean, std, weight, bias.

    Each class carries half the total weight, so a rare class is not ignored (the notebook's classifier,
    without this, answered "not a bark" to nearly everything).
    """
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("logistic regression needs both positives and negatives")
    logs = log_terms(rl, kl)
    mean, std = _standardisation(logs)
    x = (logs - mean) / std
    design = np.hstack([x, np.ones((len(x), 1))])
    y = labels.astype(np.float64)
    sample_w = np.where(labels, 0.5 / labels.sum(), 0.5 / (~labels).sum())
    reg = np.diag([l2, l2, 0.0])
    beta = np.zeros(3)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ beta)))
        grad = design.T @ (sample_w * (p - y)) + reg @ beta
        hess = design.T @ (design * (sample_w * p * (1 - p))[:, None]) + reg + 1e-9 * np.eye(3)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return mean, std, beta[:2], float(beta[2])


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
