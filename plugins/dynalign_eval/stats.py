"""Statistics for pairwise preferences: bootstrap intervals and the length-controlled win
rate (a logistic regression of preference on the length difference, as alpaca_eval does)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled with replacement)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _fit_logistic(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Newton's method for logistic regression with soft targets in [0, 1] and a small ridge
    (which keeps the fit finite when every preference is the same)."""
    weights = np.zeros(features.shape[1])
    penalty = ridge * np.eye(features.shape[1])
    for _ in range(steps):
        probs = 1 / (1 + np.exp(-features @ weights))
        gradient = features.T @ (probs - targets) + penalty @ weights
        hessian = (features * (probs * (1 - probs))[:, None]).T @ features + penalty
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return weights


def length_controlled(preferences: Sequence[float], length_diffs: Sequence[float]) -> tuple[float, float]:
    """(length-controlled win rate, length coefficient).

    Fits P(aligned preferred) = sigmoid(b0 + b1 * tanh(d / std(d))) with d = aligned length minus
    base length, then predicts with the length term at zero: the win rate the judge would give
    if both answers were equally long.
    """
    y = np.asarray(preferences, dtype=float)
    d = np.asarray(length_diffs, dtype=float)
    scale = d.std() or 1.0
    features = np.column_stack([np.ones_like(d), np.tanh(d / scale)])
    b0, b1 = _fit_logistic(features, y)
    return float(1 / (1 + np.exp(-b0))), float(b1)


def length_controlled_ci(
    preferences: Sequence[float], length_diffs: Sequence[float], resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the length-controlled win rate."""
    y = np.asarray(preferences, dtype=float)
    d = np.asarray(length_diffs, dtype=float)
    if y.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    rates = []
    for _ in range(resamples):
        pick = rng.integers(0, y.size, size=y.size)
        rates.append(length_controlled(y[pick], d[pick])[0])
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)


def summarize(scores: Sequence[float], resamples: int, seed: int) -> dict[str, float | int]:
    """Win rate, its 95% bootstrap interval and the count of wins, ties and losses."""
    low, high = bootstrap_ci(scores, resamples, seed)
    return {
        "n": len(scores),
        "win_rate": float(np.mean(scores)) if len(scores) else float("nan"),
        "ci95": [low, high],
        "wins": sum(1 for s in scores if s == 1.0),
        "ties": sum(1 for s in scores if s == 0.5),
        "losses": sum(1 for s in scores if s == 0.0),
    }


def paired_rates(
    base: Sequence[float], aligned: Sequence[float], resamples: int, seed: int
) -> dict[str, dict[str, float | list[float]] | int]:
    """Mean of 0/1 outcomes of base and aligned on the same items, each with its 95% bootstrap
    interval, and aligned minus base with the interval of the paired differences."""
    if len(base) != len(aligned):
        raise ValueError(f"paired outcomes differ in length: {len(base)} base, {len(aligned)} aligned")
    diffs = [a - b for a, b in zip(aligned, base)]
    out: dict[str, dict[str, float | list[float]] | int] = {"n": len(diffs)}
    for name, values in (("base", base), ("aligned", aligned), ("difference", diffs)):
        mean = float(np.mean(values)) if len(values) else float("nan")
        out[name] = {"rate": mean, "ci95": list(bootstrap_ci(values, resamples, seed))}
    return out
