"""Pairwise value win rate of the aligned model over its base on the held-out prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynalign.api import (
    ChatModel,
    PromptRecord,
    RunDirectory,
    ValueSpec,
    combine_orders,
    order_score,
    pairwise,
    resolve_mode,
)
from dynalign_eval.answers import greedy_answers
from dynalign_eval.options import EvalError, EvalOptions
from dynalign_eval.stats import length_controlled, length_controlled_ci, summarize

NO_PILLAR = "(no pillar)"


def win_rate(
    run_dir: RunDirectory,
    value: ValueSpec,
    base: ChatModel,
    aligned: ChatModel,
    judge: ChatModel,
    options: EvalOptions,
    say: Callable[[str], None],
    records: list[PromptRecord] | None = None,
) -> dict[str, Any]:
    """Answer the held-out prompts (or `records`) greedily with both models, judge each pair in
    both orders (disagreement counts as a tie, 0.5) and summarise with bootstrap intervals."""
    source = "held-out" if records is None else "given"
    if records is None:
        prompts = run_dir.read_prompts()
        if prompts is None or not prompts.held_out:
            raise EvalError(
                f"{run_dir.root} has no held-out prompts; set prompts.options.held_out above 0 for the next run"
            )
        records = prompts.held_out
    records = records[: options.limit]
    texts = [r.prompt for r in records]
    say(f"eval: answering {len(texts)} {source} prompts with the base and the aligned model")
    base_answers = greedy_answers(base, texts, options.max_new_tokens, options.seed, say, "eval: base answers")
    aligned_answers = greedy_answers(aligned, texts, options.max_new_tokens, options.seed)
    mode = resolve_mode(judge, options.judge_mode)
    say(f"eval: judging {len(texts)} pairs in both orders ({mode})")
    forward = pairwise(
        judge, value, list(zip(texts, aligned_answers, base_answers)), mode, options.judge_max_new_tokens
    )
    backward = pairwise(
        judge, value, list(zip(texts, base_answers, aligned_answers)), mode, options.judge_max_new_tokens
    )
    scores = [_both_orders(f.value, b.value) for f, b in zip(forward, backward)]
    diffs = [float(len(a) - len(b)) for a, b in zip(aligned_answers, base_answers)]
    out: dict[str, Any] = {"judge_mode": mode, **summarize(scores, options.bootstrap, options.seed)}
    out["lc_win_rate"], out["lc_length_coefficient"] = length_controlled(scores, diffs)
    out["lc_ci95"] = list(length_controlled_ci(scores, diffs, max(100, options.bootstrap // 2), options.seed))
    first = [order_score(v, True) for v in forward]
    second = [order_score(v, False) for v in backward]
    out["aligned_preferred_when_first"] = _mean([s for s in first if s is not None])
    out["aligned_preferred_when_second"] = _mean([s for s in second if s is not None])
    out["position_bias_rate"] = _mean(
        [float(f.winner in ("A", "B") and f.winner == b.winner) for f, b in zip(forward, backward)]
    )
    out["unparsable_rate"] = _mean([float(v.winner is None) for v in forward + backward])
    out["mean_length"] = {
        "base": _mean([len(a) for a in base_answers]),
        "aligned": _mean([len(a) for a in aligned_answers]),
    }
    pillars: dict[str, list[float]] = {}
    for record, score in zip(records, scores):
        pillars.setdefault(record.pillar or NO_PILLAR, []).append(score)
    out["per_pillar"] = {
        name: summarize(values, options.bootstrap, options.seed) for name, values in sorted(pillars.items())
    }
    out["pairs"] = [
        {
            "id": record.id,
            "pillar": record.pillar,
            "prompt": record.prompt,
            "base": b,
            "aligned": a,
            "preference": s,
            "verdict_aligned_first": f.winner,
            "verdict_aligned_second": w.winner,
            "prob_a_aligned_first": f.prob_a,
            "prob_a_aligned_second": w.prob_a,
        }
        for record, a, b, s, f, w in zip(records, aligned_answers, base_answers, scores, forward, backward)
    ]
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _both_orders(forward: float | None, backward: float | None) -> float:
    """The aligned answer's outcome over both orders (`combine_orders`); a missing verdict is a tie."""
    outcome, _ = combine_orders(forward, backward)
    return 0.5 if outcome is None else outcome
