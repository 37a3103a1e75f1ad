"""Did the value move into the weights? Three measurements that need no outside judge.

On the value's held-out labeled pairs (never used to choose anything):
  (a) implicit-reward accuracy: is log pi_aligned(y|x) - log pi_base(y|x) higher for the better
      answer than for the worse one? Per token (the headline: immune to length drift) and summed.
      Likelihood-adjusted beside it: the better answers of hard pairs are usually the less likely
      ones (specific, not generic), so a model that merely grew more random (flatter) raises them
      more and "wins" without learning anything; the adjusted accuracy first removes the part of
      each answer's change that its base likelihood predicts (a linear fit over all answers).
  (b) unprompted preference accuracy: is log pi(better|x) above log pi(worse|x), for the base
      and for the aligned model (no value system prompt in either)?
On held-out prompts:
  (c) gap closed: samples y ~ pi_base(.|system, x) estimate KL(pi_base(.|system,x) || pi(.|x));
      1 - KL(aligned) / KL(base) is the share of the system prompt's effect now in the weights.
Every number comes with a bootstrap 95% interval (pairs, or prompts for (c), resampled).
While settings are being chosen, `split = "calibration"` measures all three on the calibration
pairs and their prompts instead, so the held-out pairs stay unseen until the final measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dynalign.api import (
    CalibrationPair,
    ChatModel,
    Conversation,
    GenerationParams,
    ValueSpec,
    measure_once,
    pair_outcome,
    with_system,
)
from dynalign_eval.stats import bootstrap_ci


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def _accuracy(outcomes: list[float], resamples: int, seed: int) -> dict[str, Any]:
    return {"accuracy": _mean(outcomes), "ci95": list(bootstrap_ci(outcomes, resamples, seed)), "n": len(outcomes)}


def pair_logprobs(
    model: ChatModel, pairs: Sequence[CalibrationPair], say: Callable[[str], None] | None = None
) -> list[tuple[list[float], list[float]]]:
    """Per-token log-probabilities of (better, worse) for each pair, unprompted; measured once
    per model and pairs (`dynalign.measured`), so the base model's side is not redone."""

    def measure() -> list[list[float]]:
        conversations = [[{"role": "user", "content": p.prompt}] for p in pairs for _ in range(2)]
        return model.completion_logprobs(conversations, [a for p in pairs for a in (p.better, p.worse)])

    identity = model.fingerprint()
    key = None if identity is None else {"model": identity, "pairs": [p.model_dump(mode="json") for p in pairs]}
    logps = measure_once("pair-logprobs", key, measure, say=say, label="eval: pair log-likelihoods")
    return list(zip(logps[0::2], logps[1::2]))


def _adjusted_outcomes(base_means: np.ndarray, changes: np.ndarray) -> list[float]:
    """Pair outcomes of the change in per-token log-probability left after a least-squares fit
    of change on base log-probability (rows: pairs; columns: better, worse)."""
    design = np.column_stack([np.ones(base_means.size), base_means.ravel()])
    coef, *_ = np.linalg.lstsq(design, changes.ravel(), rcond=None)
    residual = (changes.ravel() - design @ coef).reshape(changes.shape)
    return [pair_outcome(float(b), float(w)) for b, w in residual]


def likelihood_adjusted(
    base: list[tuple[list[float], list[float]]],
    aligned: list[tuple[list[float], list[float]]],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Implicit-reward accuracy per token with the base likelihood's linear effect removed;
    the fit is redone in every bootstrap resample of the pairs."""
    base_means = np.array([[_mean(b), _mean(w)] for b, w in base])
    changes = np.array([[_mean(ab), _mean(aw)] for ab, aw in aligned]) - base_means
    outcomes = _adjusted_outcomes(base_means, changes)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = rng.integers(0, len(outcomes), len(outcomes))
        draws.append(_mean(_adjusted_outcomes(base_means[rows], changes[rows])))
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (float("nan"), float("nan"))
    slope = np.polyfit(base_means.ravel(), changes.ravel(), 1)[0] if len(outcomes) > 1 else float("nan")
    return {
        "accuracy": _mean(outcomes),
        "ci95": [float(low), float(high)],
        "n": len(outcomes),
        "likelihood_slope": float(slope),
    }


def pair_metrics(
    base: list[tuple[list[float], list[float]]],
    aligned: list[tuple[list[float], list[float]]],
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """(a) and (b) from the per-token log-probabilities of both models on the same pairs."""

    def implicit(agg: Callable[[list[float]], float]) -> list[float]:
        return [pair_outcome(agg(ab) - agg(bb), agg(aw) - agg(bw)) for (bb, bw), (ab, aw) in zip(base, aligned)]

    def preference(rows: list[tuple[list[float], list[float]]], agg: Callable[[list[float]], float]) -> list[float]:
        return [pair_outcome(agg(b), agg(w)) for b, w in rows]

    margins = [(_mean(ab) - _mean(bb)) - (_mean(aw) - _mean(bw)) for (bb, bw), (ab, aw) in zip(base, aligned)]
    return {
        "implicit_reward_per_token": {
            **_accuracy(implicit(_mean), resamples, seed),
            "mean_margin_nats_per_token": _mean(margins),
        },
        "implicit_reward_summed": _accuracy(implicit(sum), resamples, seed),
        "implicit_reward_adjusted": likelihood_adjusted(base, aligned, resamples, seed),
        "preference_base_per_token": _accuracy(preference(base, _mean), resamples, seed),
        "preference_aligned_per_token": _accuracy(preference(aligned, _mean), resamples, seed),
        "preference_base_summed": _accuracy(preference(base, sum), resamples, seed),
        "preference_aligned_summed": _accuracy(preference(aligned, sum), resamples, seed),
    }


def _base_samples(
    system: str,
    base: ChatModel,
    bare: list[Conversation],
    samples: int,
    max_new_tokens: int,
    seed: int,
    say: Callable[[str], None] | None,
) -> dict[str, Any]:
    """The base model's side of (c), measured once per model, prompts and settings: samples
    from pi_base(.|system, x) and their summed log-likelihoods with and without the system."""

    def measure() -> dict[str, Any]:
        prompted = [with_system(c, system) for c in bare]
        params = GenerationParams(max_new_tokens=max_new_tokens, temperature=1.0, n=samples, seed=seed)
        drawn = base.chat(prompted, params)
        index = [i for i, group in enumerate(drawn) for _ in group]
        answers = [a for group in drawn for a in group]
        return {
            "index": index,
            "answers": answers,
            "with_value": [sum(lp) for lp in base.completion_logprobs([prompted[i] for i in index], answers)],
            "base_bare": [sum(lp) for lp in base.completion_logprobs([bare[i] for i in index], answers)],
        }

    identity = base.fingerprint()
    settings = {"samples": samples, "max_new_tokens": max_new_tokens, "seed": seed}
    key = None if identity is None else {"model": identity, "system": system, "prompts": bare, **settings}
    return measure_once("gap-base", key, measure, say=say, label="eval: base samples for gap closed")


def gap_closed(
    value: ValueSpec,
    base: ChatModel,
    aligned: ChatModel,
    prompts: Sequence[str],
    samples: int,
    max_new_tokens: int,
    resamples: int = 2000,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """(c): the share of KL(pi_base(.|system,x) || pi(.|x)) that training removed, on samples
    from the system-prompted base model (temperature 1: the distribution itself)."""
    bare = [[{"role": "user", "content": p}] for p in prompts]
    drawn = _base_samples(value.system_prompt.strip(), base, bare, samples, max_new_tokens, seed, say)
    index, answers, with_value, base_bare = drawn["index"], drawn["answers"], drawn["with_value"], drawn["base_bare"]
    aligned_bare = [sum(lp) for lp in aligned.completion_logprobs([bare[i] for i in index], answers)]
    per_prompt = np.zeros((len(prompts), 2))
    counts = np.zeros(len(prompts))
    for i, v, b, a in zip(index, with_value, base_bare, aligned_bare):
        per_prompt[i] += (v - b, v - a)
        counts[i] += 1
    per_prompt /= np.maximum(counts, 1)[:, None]

    def closed(rows: np.ndarray) -> float:
        kl_base = rows[:, 0].mean()
        return float(1 - rows[:, 1].mean() / kl_base) if kl_base > 0 else float("nan")

    rng = np.random.default_rng(seed)
    draws = np.array([closed(per_prompt[rng.integers(0, len(prompts), len(prompts))]) for _ in range(resamples)])
    draws = draws[~np.isnan(draws)]  # resamples where the system prompt changed nothing define no share
    return {
        "gap_closed": closed(per_prompt),
        "ci95": [float(np.percentile(draws, q)) if draws.size else float("nan") for q in (2.5, 97.5)],
        "kl_base_nats": float(per_prompt[:, 0].mean()),
        "kl_aligned_nats": float(per_prompt[:, 1].mean()),
        "n_prompts": len(prompts),
        "samples_per_prompt": samples,
        "max_new_tokens": max_new_tokens,
    }


def efficacy(
    value: ValueSpec,
    base: ChatModel,
    aligned: ChatModel,
    prompts: Sequence[str],
    *,
    split: str = "held_out",
    samples: int,
    max_new_tokens: int,
    resamples: int,
    seed: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """(a), (b) on the value's `split` pairs, `held_out` unless settings are being chosen on
    `calibration` (skipped with a reason if there are none), and (c) on `prompts`."""
    out: dict[str, Any] = {"split": split}
    pairs = list(getattr(value, split))
    if pairs:
        say(f"eval: efficacy on {len(pairs)} {split} labeled pairs (log-likelihoods, base and aligned)")
        out["pairs"] = pair_metrics(pair_logprobs(base, pairs, say), pair_logprobs(aligned, pairs), resamples, seed)
        out["n_pairs"] = len(pairs)
    else:
        out["pairs"] = {"skipped": f"value {value.name!r} has no {split} pairs"}
    where = split.replace("_", "-")
    if prompts:
        say(f"eval: gap closed on {len(prompts)} {where} prompts x {samples} samples")
        out["gap"] = gap_closed(value, base, aligned, prompts, samples, max_new_tokens, resamples, seed, say)
    else:
        out["gap"] = {"skipped": f"no {where} prompts"}
    return out


def summary(result: dict[str, Any]) -> str:
    """Headline efficacy numbers as one line fragment."""
    parts = []
    implicit = (result.get("pairs") or {}).get("implicit_reward_per_token")
    if result.get("split") == "calibration":
        parts.append("on CALIBRATION data (choosing settings)")
    if implicit:
        low, high = implicit["ci95"]
        parts.append(f"implicit-reward acc {implicit['accuracy']:.0%} [{low:.0%}, {high:.0%}] per token")
        adjusted = result["pairs"].get("implicit_reward_adjusted")
        if adjusted:
            low, high = adjusted["ci95"]
            parts.append(f"likelihood-adjusted {adjusted['accuracy']:.0%} [{low:.0%}, {high:.0%}]")
    gap = result.get("gap") or {}
    if "gap_closed" in gap:
        low, high = gap["ci95"]
        parts.append(f"gap closed {gap['gap_closed']:.0%} [{low:.0%}, {high:.0%}]")
    return "; ".join(parts)
