"""Metrics and the linear RL-KL classifier, on data whose answers are known."""

from __future__ import annotations

import itertools

import numpy as np

from barkwatch.model.classifier import LinearClassifier, fit_logistic, fit_one_class, log_terms
from barkwatch.training.metrics import balanced_accuracy, best_threshold, roc_auc


def test_roc_auc_equals_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 60)
    scores = rng.integers(0, 8, 60).astype(float)  # many ties
    pairs = [(p, n) for p, n in itertools.product(scores[labels == 1], scores[labels == 0])]
    expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert abs(roc_auc(labels, scores) - expected) < 1e-12
    assert np.isnan(roc_auc(np.ones(3), np.arange(3)))


def test_balanced_accuracy_is_not_fooled_by_the_majority_answer():
    labels = np.array([1] + [0] * 9)
    assert balanced_accuracy(labels, np.zeros(10)) == 0.5  # plain accuracy would be 0.9


def test_best_threshold_separates_separable_scores():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.9])
    t = best_threshold(labels, scores)
    assert 0.3 < t < 0.7


def test_logistic_regression_finds_the_separating_direction_despite_imbalance():
    rng = np.random.default_rng(0)
    # Barks: high KL, RL anywhere; others: low KL. Twenty times more negatives than positives.
    kl = np.concatenate([rng.lognormal(3.0, 0.3, 20), rng.lognormal(1.0, 0.3, 400)])
    rl = rng.lognormal(-3.0, 0.5, 420)
    labels = np.r_[np.ones(20), np.zeros(400)].astype(bool)
    mean, std, weight, bias = fit_logistic(log_terms(rl, kl), labels)
    clf = LinearClassifier(tuple(mean), tuple(std), tuple(weight), bias, 0.5, "logistic")
    scores = clf.score(rl, kl)
    assert weight[1] > 5 * abs(weight[0])  # KL carries the signal
    assert roc_auc(labels, scores) > 0.99
    assert balanced_accuracy(labels, scores >= 0.5) > 0.95


def test_one_class_fallback_accepts_the_stated_share_of_positives():
    rng = np.random.default_rng(0)
    rl, kl = rng.lognormal(-3, 0.4, 1000), rng.lognormal(2, 0.4, 1000)
    clf = fit_one_class(rl, kl, keep=0.95)
    accepted = (clf.score(rl, kl) >= clf.threshold).mean()
    assert abs(accepted - 0.95) < 0.01
    # Far larger losses than the barks' look like "not a bark".
    assert clf.score(np.array([1.0]), np.array([1e4]))[0] < 0.01
