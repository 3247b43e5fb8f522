"""Scoring metrics as pure numpy functions. Plain accuracy is reported only beside balanced accuracy and AUC:
with one bark in ten clips, answering "no bark" to everything is 90% accurate."""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half). NaN when a class is absent."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean of the true-positive and true-negative rates; NaN when a class is absent."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(predicted).astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    tpr = (predicted & labels).sum() / labels.sum()
    tnr = (~predicted & ~labels).sum() / (~labels).sum()
    return float((tpr + tnr) / 2.0)


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float((np.asarray(labels).astype(bool) == np.asarray(predicted).astype(bool)).mean())


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold that maximises balanced accuracy (Youden's J), midway between neighbouring scores."""
    labels = np.asarray(labels).astype(bool)
    values = np.unique(np.asarray(scores, dtype=np.float64))
    candidates = np.concatenate([[values[0] - 1e-9], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1e-9]])
    best, best_t = -1.0, 0.5
    for t in candidates:
        b = balanced_accuracy(labels, scores >= t)
        if b > best:
            best, best_t = b, float(t)
    return best_t


def summarise(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """AUC, balanced accuracy and accuracy at ``threshold``, with the class counts they rest on."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores) >= threshold
    return {
        "positives": int(labels.sum()),
        "negatives": int((~labels).sum()),
        "roc_auc": roc_auc(labels, scores),
        "balanced_accuracy": balanced_accuracy(labels, predicted),
        "accuracy": accuracy(labels, predicted),
    }
