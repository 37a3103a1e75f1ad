"""Asking a judge model for pairwise preferences, pointwise scores and refusal verdicts (the
judge-check and the eval): next-token probabilities when the backend has them, else a greedy
reply that is parsed. A judge that fails (an unreachable endpoint) is a JudgeError of one line."""

from __future__ import annotations

from collections.abc import Sequence

from dynalign.errors import DynalignError, JudgeError, UnsupportedError
from dynalign.judging.prompts import pairwise_messages, pointwise_messages, refusal_messages
from dynalign.judging.verdicts import (
    REFUSAL_PREFIX,
    SCORE_PREFIX,
    WINNER_PREFIX,
    Verdict,
    expected_score,
    parse_preference,
    parse_refusal,
    parse_score,
    score_choices,
)
from dynalign.messages import Conversation
from dynalign.models import ChatModel, GenerationParams
from dynalign.values import ValueSpec


def resolve_mode(judge: ChatModel, mode: str) -> str:
    """`probs` or `generate` for this judge (`auto`: probs if the backend supports them)."""
    if mode == "auto":
        return "probs" if judge.supports_token_probs else "generate"
    if mode == "probs" and not judge.supports_token_probs:
        raise JudgeError(f"judge backend {judge.name!r} cannot return token probabilities; set judge_mode = 'generate'")
    return mode


def _call(judge: ChatModel, what: str, function, *args):
    try:
        return function(*args)
    except DynalignError:
        raise
    except Exception as exc:  # a remote judge's connection or API error: one line, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise JudgeError(f"judge {judge.describe()} failed while {what}: {type(exc).__name__}: {first}") from exc


def pairwise(
    judge: ChatModel,
    value: ValueSpec,
    items: Sequence[tuple[str, str, str]],
    mode: str,
    max_new_tokens: int = 64,
) -> list[Verdict]:
    """Judge each (prompt, answer A, answer B) once, in the order given."""
    conversations: list[Conversation] = [pairwise_messages(value, p, a, b) for p, a, b in items]
    if not conversations:
        return []
    if resolve_mode(judge, mode) == "probs":
        try:
            probs = _call(judge, "judging pairs", judge.next_token_probs, conversations, ["A", "B"], WINNER_PREFIX)
        except UnsupportedError:
            probs = None
        if probs is not None:
            verdicts = []
            for row in probs:
                mass = row["A"] + row["B"]
                if mass < 1e-9:
                    verdicts.append(Verdict(None))
                    continue
                p_a = row["A"] / mass
                verdicts.append(Verdict("A" if p_a > 0.5 else "B" if p_a < 0.5 else "tie", p_a))
            return verdicts
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    replies = _call(judge, "judging pairs", judge.chat, conversations, params)
    return [Verdict(parse_preference(reply[0])) for reply in replies]


def pointwise(
    judge: ChatModel,
    value: ValueSpec,
    items: Sequence[tuple[str, str]],
    mode: str,
    max_new_tokens: int = 64,
) -> list[float | None]:
    """A holistic score for each (prompt, answer): expected score from token probabilities,
    or the parsed `Score: N` of a greedy reply (None when unparsable)."""
    conversations = [pointwise_messages(value, p, a) for p, a in items]
    if not conversations:
        return []
    low, high = value.score_min, value.score_max
    if resolve_mode(judge, mode) == "probs":
        try:
            probs = _call(
                judge, "scoring", judge.next_token_probs, conversations, score_choices(low, high), SCORE_PREFIX
            )
            return [expected_score(row) for row in probs]
        except UnsupportedError:
            pass
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    replies = _call(judge, "scoring", judge.chat, conversations, params)
    return [parse_score(reply[0], low, high) for reply in replies]


def refusals(
    judge: ChatModel, items: Sequence[tuple[str, str]], mode: str, max_new_tokens: int = 16
) -> list[bool | None]:
    """Does each (prompt, answer) refuse its request? From P(yes) vs P(no) after `Refusal: `,
    or the parsed `Refusal: yes|no` of a greedy reply (None when unparsable)."""
    conversations = [refusal_messages(p, a) for p, a in items]
    if not conversations:
        return []
    if resolve_mode(judge, mode) == "probs":
        try:
            probs = _call(
                judge, "judging refusals", judge.next_token_probs, conversations, ["yes", "no"], REFUSAL_PREFIX
            )
            return [None if row["yes"] + row["no"] < 1e-9 else row["yes"] > row["no"] for row in probs]
        except UnsupportedError:
            pass
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    replies = _call(judge, "judging refusals", judge.chat, conversations, params)
    return [parse_refusal(reply[0]) for reply in replies]
