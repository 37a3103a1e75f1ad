"""Measuring a reward signal on a value's labeled pairs before trusting it.

A signal is any Rewarder; a labeled pair is a prompt with a better and a worse answer. A pair
counts 1 when the better answer scores strictly higher, 1/2 on a tie or when either answer is
unscorable, 0 otherwise. The length check repeats the accuracy on the pairs whose better answer
is the shorter one: a signal that merely likes longer answers fails there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from dynalign.measured import measure_once
from dynalign.models import PolicyHandle
from dynalign.rewards import Rewarder, checked_scores
from dynalign.values import CalibrationPair


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (successes may be fractional: ties count 1/2)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def pair_outcome(better: float | None, worse: float | None) -> float:
    """1 if better > worse, 0 if below, 1/2 on a tie or a missing score."""
    if better is None or worse is None or better == worse:
        return 0.5
    return 1.0 if better > worse else 0.0


def accuracy_summary(outcomes: Sequence[float], better_shorter: Sequence[bool]) -> dict[str, Any]:
    """Accuracy with its 95% interval, plus the same on the pairs whose better answer is shorter."""
    n = len(outcomes)
    short = [o for o, s in zip(outcomes, better_shorter) if s]
    summary: dict[str, Any] = {
        "n": n,
        "accuracy": sum(outcomes) / n if n else float("nan"),
        "ci95": list(wilson_interval(sum(outcomes), n)),
        "ties": sum(1 for o in outcomes if o == 0.5),
        "n_better_shorter": len(short),
        "accuracy_better_shorter": sum(short) / len(short) if short else None,
    }
    return summary


def score_pairs(rewarder: Rewarder, pairs: Sequence[CalibrationPair]) -> tuple[list[float | None], list[float | None]]:
    """The rewarder's scores of every pair's better and worse answers (one call)."""
    prompts = [[{"role": "user", "content": p.prompt}] for p in pairs for _ in range(2)]
    answers = [[{"role": "assistant", "content": a}] for p in pairs for a in (p.better, p.worse)]
    scores = checked_scores(rewarder.name, rewarder(prompts, answers), len(answers))
    rewarder.pop_metrics()  # measuring is not training: keep its diagnostics out of the step logs
    return scores[0::2], scores[1::2]


def measure_signal(rewarder: Rewarder, pairs: Sequence[CalibrationPair]) -> dict[str, Any]:
    """How often `rewarder` scores the better answer of each pair above the worse one."""
    better, worse = score_pairs(rewarder, pairs)
    outcomes = [pair_outcome(b, w) for b, w in zip(better, worse)]
    summary = accuracy_summary(outcomes, [len(p.better) < len(p.worse) for p in pairs])
    summary["unscorable"] = sum(1 for s in (*better, *worse) if s is None)
    by_kind: dict[str, list[float]] = {}
    for pair, outcome in zip(pairs, outcomes):
        by_kind.setdefault(pair.kind or "unlabeled", []).append(outcome)
    summary["accuracy_by_kind"] = {kind: sum(o) / len(o) for kind, o in sorted(by_kind.items())}
    return summary


def measure_signal_once(
    rewarder: Rewarder,
    pairs: Sequence[CalibrationPair],
    policy: PolicyHandle | None,
    *,
    label: str,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`measure_signal`, reused from the measurement cache while the policy's initial weights,
    the value, the pairs and the signal's definition (rewarder and options) are unchanged
    (no `policy`, or one without a fingerprint: measured every time)."""
    identity = policy.fingerprint() if policy is not None else None
    value = getattr(rewarder.context, "value", None)
    key = None
    if identity is not None:
        key = {
            "policy": identity,
            "rewarder": rewarder.name,
            "options": rewarder.options.model_dump(mode="json"),
            "value": value.model_dump(mode="json") if value is not None else None,
            "pairs": [p.model_dump(mode="json") for p in pairs],
        }
    return measure_once("signal", key, lambda: measure_signal(rewarder, pairs), say=say, label=label)


def credibly_above_chance(summary: dict[str, Any]) -> bool:
    """True when the interval's lower bound is above 1/2."""
    return summary["n"] > 0 and summary["ci95"][0] > 0.5


def describe_measure(name: str, summary: dict[str, Any]) -> str:
    """One line: `name accuracy [low, high] (n pairs; better-shorter pairs: acc)`."""
    low, high = summary["ci95"]
    shorter = summary["accuracy_better_shorter"]
    short = "n/a" if shorter is None else f"{shorter:.2f} of {summary['n_better_shorter']}"
    return (
        f"{name} {summary['accuracy']:.2f} [{low:.2f}, {high:.2f}] on {summary['n']} pairs (better-is-shorter: {short})"
    )
