"""The `Rewarder` kind and its contract, written down once: what a call returns and which metric
keys it reports.

A rewarder's `__call__` returns a list with one score per completion: a real number, or None
for a completion it could not score. `pop_metrics()` returns diagnostics under *bare* keys
(`unscorable_rate`, `pillar/Knowledge`); whoever logs them (the optimizer's per-step metrics,
`dynalign score`'s summary) adds the rewarder's name once, as `<name>/<key>`. Every caller
checks through `checked_scores` and `logged_metrics`, and `dynalign.testing.check_rewarder`
applies the same checks, so a broken rewarder fails with one line naming it, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any, ClassVar

from dynalign.components import Component, Options, RunContext
from dynalign.errors import RewarderError
from dynalign.models import PolicyHandle

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


class Rewarder(Component):
    """Scores completions; follows TRL's reward-function contract.

    `__call__(prompts, completions, **columns)` returns one float per completion, or None
    where the completion could not be scored (TRL then leaves it out of the group baseline).
    Prompts and completions are always conversational: each prompt is a list of
    `{"role", "content"}` messages (the value's system prompt first when training with it),
    each completion a list holding the assistant's message, so `completion[-1]["content"]`
    is its text. Callers normalise plain strings with `as_conversation` before a rewarder
    sees them.
    """

    kind = "rewarder"
    needs_policy: ClassVar[bool] = False  # True: scores with the policy, given through bind_policy

    def __init__(self, options: Options | None = None, context: RunContext | None = None) -> None:
        super().__init__(options, context)
        self.__name__ = self.name  # TRL names reward columns after the function's __name__

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """Score each completion of its prompt."""
        raise NotImplementedError

    def bind_policy(self, policy: PolicyHandle) -> None:
        """Called by the optimizer before training with the live policy. Default: ignore it."""

    def signal_variants(self) -> dict[str, Rewarder]:
        """The signals this rewarder could use, by name, as rewarders of their own: what
        `judge-check` measures on the value's calibration pairs. Default: none to compare."""
        return {}

    def pop_metrics(self) -> dict[str, float]:
        """Diagnostics since the last call under bare keys (`unscorable_rate`, `pillar/<Name>`; the
        logger adds `<name>/`; the keys are defined in `dynalign.rewards`); then reset."""
        return {}


@dataclass
class WeightedRewarder:
    """A rewarder with the weight its scores get in the total reward."""

    rewarder: Rewarder
    weight: float = 1.0


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
