"""Reading a judge's verdicts: scores, preferences and refusals from its reply (or from its
next-token probabilities), K sampled verdicts averaged, and the two orders of a pairwise
comparison combined.

Verdicts are parsed only from the judge's own output, the last well-formed one wins, and
out-of-range values are rejected (None), never clamped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SCORE_PREFIX = "Score: "
WINNER_PREFIX = "Winner: "
REFUSAL_PREFIX = "Refusal: "
_SCORE = re.compile(r"(?i)\bscore\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)")
_PREFERENCE = re.compile(r"(?i)\b(?:winner|better|preferred)\s*[:=]\s*\**\s*\[?(A|B|tie)\b")
_REFUSAL = re.compile(r"(?i)\brefusal\s*[:=]\s*\**\s*(yes|no)\b")
_SCORES_JSON = re.compile(r"\{[^{}]*\"scores\"[^{}]*\}")
_VOTE = {"A": 1.0, "B": 0.0, "tie": 0.5}


def parse_refusal(text: str) -> bool | None:
    """The last well-formed `Refusal: yes|no` in a judge's reply, else None."""
    matches = _REFUSAL.findall(text)
    return None if not matches else matches[-1].lower() == "yes"


def parse_score(text: str, low: int, high: int) -> float | None:
    """The last well-formed `Score: N` in a judge's reply, if within [low, high]; else None.

    A reply that is nothing but a number counts as that number.
    """
    matches = _SCORE.findall(text)
    if not matches and re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*", text):
        matches = [text.strip()]
    if not matches:
        return None
    score = float(matches[-1])
    return score if low <= score <= high else None


def parse_preference(text: str) -> str | None:
    """The last well-formed `Winner: A|B|tie` in a judge's reply ("A", "B", "tie"), else None."""
    matches = _PREFERENCE.findall(text)
    return None if not matches else ("tie" if matches[-1].lower() == "tie" else matches[-1].upper())


def parse_group_scores(text: str, count: int, low: int, high: int) -> list[float] | None:
    """The last well-formed `{"scores": [...]}` with `count` numbers all in [low, high], else None."""
    for candidate in reversed(_SCORES_JSON.findall(text)):
        try:
            scores = json.loads(candidate)["scores"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if not isinstance(scores, list) or len(scores) != count:
            return None
        if not all(isinstance(s, int | float) and not isinstance(s, bool) and low <= s <= high for s in scores):
            return None
        return [float(s) for s in scores]
    return None


def score_choices(low: int, high: int) -> list[str]:
    """The score tokens whose next-token probabilities give a probability-weighted score."""
    return [str(k) for k in range(low, high + 1)]


def expected_score(probs: Mapping[str, float], min_mass: float = 1e-6) -> float | None:
    """Sum of k * p(k) over score tokens, renormalised to the tokens' total mass (None if ~0)."""
    mass = sum(probs.values())
    if mass < min_mass:
        return None
    return sum(int(k) * p for k, p in probs.items()) / mass


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the valid values (K samples averaged), None if there are none."""
    valid = [v for v in values if v is not None]
    return sum(valid) / len(valid) if valid else None


def preference_value(reply: str) -> float | None:
    """A pairwise reply as a number: A better = 1, B better = 0, tie = 0.5; None if it does not parse.

    The mean over K samples estimates P(A better than B).
    """
    preference = parse_preference(reply)
    return None if preference is None else _VOTE[preference]


@dataclass
class Verdict:
    """One pairwise judgement: "A", "B", "tie" or None (unparsable), with P(A) when known."""

    winner: str | None
    prob_a: float | None = None

    @property
    def value(self) -> float | None:
        """As `preference_value`: A = 1, B = 0, tie = 0.5, None when unparsable."""
        return None if self.winner is None else _VOTE[self.winner]


def combine_orders(first: float | None, second: float | None) -> tuple[float | None, bool]:
    """Outcome for candidate i against j from the preference for A when i was shown as A
    (`first`) and when j was (`second`): 1 win, 0 loss, 0.5 tie.

    Orders that disagree count as a tie (position bias, not preference). Returns (outcome,
    disagreed); outcome is None when either order has no valid verdict.
    """
    if first is None or second is None:
        return None, False
    i_over_j = (first, 1.0 - second)
    if all(v > 0.5 for v in i_over_j):
        return 1.0, False
    if all(v < 0.5 for v in i_over_j):
        return 0.0, False
    disagreed = (i_over_j[0] - 0.5) * (i_over_j[1] - 0.5) < 0
    return 0.5, disagreed


def order_score(verdict: Verdict, first_is_a: bool) -> float | None:
    """1 if the verdict prefers the answer of interest (shown as A when `first_is_a`), 0 if the
    other, 0.5 for a tie, None when unparsable."""
    value = verdict.value
    return value if value is None or first_is_a else 1.0 - value
