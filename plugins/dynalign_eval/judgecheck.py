"""judge-check: can a judge, and each self-signal the rewarders could train on, tell a value's
better answer from its worse one?

The `judge-check` stage and `dynalign judge-check` both run `check_stack` and judge its result
by one rule, `problems`: with self-signals measured, the best of them decides (training rewards
with a self-signal, not with the judge's verdicts); without, the judge's pointwise and pairwise
accuracy decide. Below the threshold the stage warns or stops before training (`on_fail`),
and the command exits non-zero (its threshold is 0 unless given: it reports).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dynalign.api import (
    CalibrationPair,
    ChatModel,
    DynalignError,
    ModelRef,
    Rewarder,
    Stack,
    ValueSpec,
    bind_policy,
    credibly_above_chance,
    describe_measure,
    measure_signal_once,
    order_score,
    pairwise,
    pointwise,
    resolve_mode,
)


class JudgeCheckError(DynalignError):
    """The judge cannot separate the value's calibration pairs well enough (or has none)."""


def judge_check(
    value: ValueSpec,
    judge: ChatModel,
    *,
    mode: str = "auto",
    max_new_tokens: int = 64,
    limit: int | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure `judge` on `value.calibration`: pointwise accuracy (better scored strictly above
    worse), pairwise accuracy over both orders, and the position-bias rate (the same position
    chosen in both orders). Returns a JSON-ready dict."""
    pairs = list(value.calibration)[:limit]
    if not pairs:
        raise JudgeCheckError(f"value {value.name!r} has no calibration pairs; add some to the value file")
    used = resolve_mode(judge, mode)
    if say:
        say(f"judge-check: {len(pairs)} calibration pairs, judge {judge.describe()}, mode {used}")
    scores = pointwise(
        judge,
        value,
        [(p.prompt, answer) for p in pairs for answer in (p.better, p.worse)],
        used,
        max_new_tokens,
    )
    items = [(p.prompt, p.better, p.worse) for p in pairs] + [(p.prompt, p.worse, p.better) for p in pairs]
    verdicts = pairwise(judge, value, items, used, max_new_tokens)
    forward, backward = verdicts[: len(pairs)], verdicts[len(pairs) :]
    rows = []
    for i, pair in enumerate(pairs):
        better, worse = scores[2 * i], scores[2 * i + 1]
        rows.append(
            {
                "prompt": pair.prompt,
                "pillar": pair.pillar,
                "score_better": better,
                "score_worse": worse,
                "pointwise_correct": better is not None and worse is not None and better > worse,
                "verdict_better_first": forward[i].winner,
                "verdict_better_second": backward[i].winner,
                "prob_a_better_first": forward[i].prob_a,
                "prob_a_better_second": backward[i].prob_a,
            }
        )
    n = len(pairs)
    first_ok = [order_score(v, True) == 1.0 for v in forward]
    second_ok = [order_score(v, False) == 1.0 for v in backward]
    same_position = [f.winner in ("A", "B") and f.winner == b.winner for f, b in zip(forward, backward)]
    unscored = sum(s is None for s in scores)
    unparsable = sum(v.winner is None for v in verdicts)
    return {
        "value": value.name,
        "judge": judge.describe(),
        "mode": used,
        "n_pairs": n,
        "pointwise_accuracy": sum(r["pointwise_correct"] for r in rows) / n,
        "pointwise_ties": sum(
            1 for r in rows if r["score_better"] is not None and r["score_better"] == r["score_worse"]
        )
        / n,
        "pointwise_unscorable_rate": unscored / (2 * n),
        "pairwise_accuracy": (sum(first_ok) + sum(second_ok)) / (2 * n),
        "pairwise_accuracy_better_first": sum(first_ok) / n,
        "pairwise_accuracy_better_second": sum(second_ok) / n,
        "pairwise_consistent_accuracy": sum(a and b for a, b in zip(first_ok, second_ok)) / n,
        "position_bias_rate": sum(same_position) / n,
        "pairwise_unparsable_rate": unparsable / (2 * n),
        "pairs": rows,
    }


def check_stack(
    stack: Stack,
    *,
    judge: ModelRef | None = None,
    measure_judge: bool = True,
    mode: str = "auto",
    limit: int | None = None,
    signals: Sequence[str] | None = None,
    say: Callable[[str], None] | None = None,
    where: str = "stages.judge-check",
) -> dict[str, Any]:
    """Measure the stack's judge (`judge`, default the policy judging itself) and the
    self-signals its rewarders offer (`signals`: the names to measure; default all) on the
    value's calibration pairs (at most `limit`). `where` names the judge's options in errors."""
    pairs = list(stack.value.calibration)[:limit]
    result: dict[str, Any] = {"value": stack.value.name, "n_pairs": len(pairs)}
    if measure_judge:
        model = stack.policy if judge is None else stack.context.build_model(judge, where)
        result = judge_check(stack.value, model, mode=mode, limit=limit, say=say)
        result["self_judged"] = judge is None
        if say:
            say(summary_line(result))
    result["signals"] = measure_signals([w.rewarder for w in stack.rewarders], stack.policy, pairs, signals, say)
    return result


def problems(result: dict[str, Any], threshold: float) -> list[str]:
    """The one failure rule (see the module): a line per accuracy below `threshold`."""
    if result.get("signals"):
        return signal_problems(result["signals"], threshold)
    return judge_quality_problems(result, threshold) if "pointwise_accuracy" in result else []


def judge_quality_problems(
    result: dict[str, Any], threshold: float, metrics: tuple[str, ...] = ("pointwise_accuracy", "pairwise_accuracy")
) -> list[str]:
    """One line per metric of `result` below `threshold` (empty: the judge passes)."""
    return [
        f"judge-check: {name} {result[name]:.2f} is below {threshold:.2f} "
        f"({result['n_pairs']} calibration pairs); self-rewarding with this judge may only amplify noise"
        for name in metrics
        if result[name] < threshold
    ]


def summary_line(result: dict[str, Any]) -> str:
    """The headline numbers of a judge-check as one line."""
    return (
        f"judge-check ({result['n_pairs']} pairs, {result['mode']}): pointwise {result['pointwise_accuracy']:.2f}, "
        f"pairwise {result['pairwise_accuracy']:.2f} (both orders right {result['pairwise_consistent_accuracy']:.2f}), "
        f"position bias {result['position_bias_rate']:.2f}"
    )


def measure_signals(
    rewarders: Sequence[Rewarder],
    policy: ChatModel,
    pairs: Sequence[CalibrationPair],
    names: Sequence[str] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Accuracy (95% Wilson interval, better-is-shorter check) on `pairs` of every signal the
    rewarders offer (`Rewarder.signal_variants`), computed with the policy's initial weights."""
    offered = {name: variant for r in rewarders for name, variant in r.signal_variants().items()}
    if not offered:
        return {}
    unknown = [n for n in names or () if n not in offered]
    if unknown:
        raise JudgeCheckError(f"judge-check signals: unknown signal {unknown[0]!r}; choose from {', '.join(offered)}")
    chosen = [offered[name] for name in names or offered]
    handle = bind_policy(chosen, policy)
    results = {}
    for name in names or offered:
        results[name] = measure_signal_once(offered[name], pairs, handle, label=f"judge-check signal {name}", say=say)
        if say:
            say(f"judge-check signal: {describe_measure(name, results[name])}")
    return results


def signal_problems(signals: dict[str, dict[str, Any]], threshold: float) -> list[str]:
    """A line when even the best measured signal is below `threshold`, or is not credibly
    above chance (only while `threshold` is above 1/2: a lower bar asks for no such proof)."""
    if not signals:
        return []
    name, best = max(signals.items(), key=lambda item: item[1]["accuracy"])
    if best["accuracy"] < threshold:
        return [f"judge-check: the best self-signal, {name}, reaches {best['accuracy']:.2f} < {threshold:.2f}"]
    if threshold > 0.5 and not credibly_above_chance(best):
        return [f"judge-check: no self-signal is credibly above chance (best: {describe_measure(name, best)})"]
    return []
