"""The rewarder contract, written down once: what a call returns and which metric keys it reports.

A rewarder's `__call__` returns a list with one score per completion: a real number, or None
for a completion it could not score. `pop_metrics()` returns diagnostics under *bare* keys
(`unscorable_rate`, `pillar/Knowledge`); whoever logs them (the optimizer's per-step metrics,
`dynalign score`'s summary) adds the rewarder's name once, as `<name>/<key>`. Every caller
checks through `checked_scores` and `logged_metrics`, and `dynalign.testing.check_rewarder`
applies the same checks, so a broken rewarder fails with one line naming it, never a traceback.
"""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING, Any

from dynalign.errors import RewarderError

if TYPE_CHECKING:
    from dynalign.interfaces import Rewarder

UNSCORABLE_RATE = "unscorable_rate"
"""Share of the completions since the last pop that got None (could not be scored)."""
INVALID_RATE = "invalid_rate"
"""Share of the judge's replies since the last pop that held no valid verdict."""
SCORE_MEAN = "score_mean"
"""Mean of the scores given since the last pop (None left out)."""
PILLAR_PREFIX = "pillar/"
"""`pillar/<Name>`: a diagnostic score for one pillar of the value (never rewarded)."""
MEAN = "mean"
"""Added by the logger: the mean of the rewarder's scores (`<name>/mean`)."""
LENGTH_CORR = "length_corr"
"""Added by the optimizer: correlation of completion length and score (`<name>/length_corr`)."""
RESERVED = (MEAN, LENGTH_CORR)


def checked_scores(name: str, scores: Any, count: int) -> list[float | None]:
    """`scores` as floats (None kept), or RewarderError when it is not one real number or None
    per completion."""
    fix = f"rewarder {name!r} must return a list of {count} scores (a float, or None when unscorable)"
    if not isinstance(scores, (list, tuple)):
        raise RewarderError(f"{fix}; it returned {_shown(scores)}")
    if len(scores) != count:
        raise RewarderError(f"{fix}, one per completion; it returned {len(scores)}")
    out: list[float | None] = []
    for index, score in enumerate(scores):
        if score is not None and (isinstance(score, bool) or not isinstance(score, Real)):
            raise RewarderError(f"{fix}; score {index} is {_shown(score)}")
        out.append(None if score is None else float(score))
    return out


def metric_problem(name: str, key: Any, value: Any) -> str | None:
    """What is wrong with one `pop_metrics()` item of rewarder `name`, or None."""
    if not isinstance(key, str) or not key:
        return f"key {key!r} is not a non-empty string"
    if key.startswith(f"{name}/"):
        return f"key {key!r} carries the rewarder's name; return {key[len(name) + 1 :]!r} (the logger adds {name}/)"
    if key in RESERVED:
        return f"key {key!r} is reserved (the logger adds {name}/{key} itself); choose another name"
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"{key!r} is {_shown(value)}, not a number"
    return None


def logged_metrics(rewarder: Rewarder, label: str | None = None) -> dict[str, float]:
    """Pop the rewarder's metrics as `<label>/<key>` (label: its name), checked; RewarderError
    names the first broken key."""
    metrics = rewarder.pop_metrics()
    if not isinstance(metrics, dict):
        raise RewarderError(f"rewarder {rewarder.name!r}: pop_metrics() must return a dict, not {_shown(metrics)}")
    for key, value in metrics.items():
        problem = metric_problem(rewarder.name, key, value)
        if problem:
            raise RewarderError(f"rewarder {rewarder.name!r}: pop_metrics() {problem}")
    prefix = label or rewarder.name
    return {f"{prefix}/{key}": float(value) for key, value in metrics.items()}


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}... ({type(value).__name__})" if len(text) > 60 else f"{text} ({type(value).__name__})"
