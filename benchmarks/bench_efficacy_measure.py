"""The measuring half of bench_efficacy.py: signal accuracies, IFEval for base and every
aligned model (one process, one model at a time), and the markdown table."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from dynalign.api import GenerationParams, RunContext, measure_signal
from dynalign.plugins import load_registry
from dynalign_eval import ifeval
from dynalign_hf.backend import HFChatModel, HFOptions
from dynalign_selfreward.rewarder import SIGNALS as SELF_SIGNALS
from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions


def _pct(summary: dict[str, Any]) -> str:
    low, high = summary["ci95"]
    return f"{summary['accuracy']:.0%} [{low:.0%}, {high:.0%}]"


# An unrelated system prompt about as long as CA's: how much of the contrast is any system prompt?
NEUTRAL_PROMPT = (
    "You are a helpful assistant working at the front desk of a public library in a mid-sized town. The "
    "library opens at nine in the morning and closes at six in the evening on weekdays, with shorter hours on "
    "Saturdays. It has a reading room on the second floor, a children's corner near the entrance, public "
    "computers, a photocopier and a small cafe. Visitors may borrow up to ten items at a time for three weeks."
)
SPECIFICITY = {  # diagnostic row -> (system prompt of the value, self-reward options)
    "contrast-sum, neutral prompt instead of the value's": ("neutral", {"mode": "contrast"}),
    "contrast-sum, value's prompt against the neutral one": (
        "value",
        {"mode": "contrast", "contrast_context": "counter", "counter_prompt": NEUTRAL_PROMPT},
    ),
}


def signal_accuracies(value: Any, registry: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """Each signal's accuracy on the calibration and on the held-out pairs (base model), and the
    specificity rows: the contrast with a neutral system prompt in place of, or against, the value's."""
    handle = HFChatModel(HFOptions()).policy_handle()
    variants = SelfRewarder(SelfRewardOptions(mode="probability"), RunContext(value, registry)).signal_variants()
    signals = {name: variants[name] for name in names}
    for row, (prompt, options) in SPECIFICITY.items():
        spec = value if prompt == "value" else value.model_copy(update={"system_prompt": NEUTRAL_PROMPT})
        signals[row] = SelfRewarder(SelfRewardOptions(**options), RunContext(spec, registry))
    out = {}
    for name, signal in signals.items():
        signal.bind_policy(handle)
        out[name] = {split: measure_signal(signal, getattr(value, split)) for split in ("calibration", "held_out")}
    return out


def ifeval_and_style(model: HFChatModel, rows: list[dict], prompts: list[str], max_new_tokens: int) -> dict[str, Any]:
    """IFEval prompt-level strict accuracy, and greedy answer length/clipping on `prompts`."""
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=0)
    answers = [r[0] for r in model.chat([[{"role": "user", "content": row["prompt"]}] for row in rows], params)]
    scored = ifeval.score(rows, answers, 1000, 0)
    style_params = GenerationParams(max_new_tokens=128, temperature=0.0, seed=0)
    replies = [r[0] for r in model.chat([[{"role": "user", "content": p}] for p in prompts], style_params)]
    _, tokenizer = model.loaded()
    lengths = [len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies]
    return {
        "ifeval_strict": scored["prompt_level_strict_acc"],
        "answer_tokens": statistics.fmean(lengths),
        "clipped": sum(n >= 127 for n in lengths) / len(lengths),
    }


def measure_and_report(args: Any, runs: dict[tuple[str, int], Path]) -> None:
    """Measure what the runs cannot (base-model signal accuracy, IFEval, style), write JSON and markdown."""
    cache = args.out / "measure.json"
    done: dict[str, Any] = json.loads(cache.read_text()) if cache.exists() else {}
    registry = load_registry()
    value = registry.get("value", "ca").obj
    # placebos and ablations add no self-signal; contrast-mean is always measured: a policy that
    # fully absorbed the value prompt has exactly its accuracy as per-token implicit reward
    signals = sorted({s for s, _ in runs if s in SELF_SIGNALS} | {"contrast-mean"})
    if set(done.get("signals", {})) != set(signals) | set(SPECIFICITY):
        done["signals"] = signal_accuracies(value, registry, signals)
    rows = ifeval.load_rows(args.ifeval_path, args.ifeval_limit) if args.ifeval_path else []
    first = next(iter(runs.values()))
    prompts = [json.loads(line)["prompt"] for line in (first / "prompts" / "held_out.jsonl").read_text().splitlines()]
    # IFEval generation dominates (100 prompts x 256 tokens is ~7 min a model here): the base
    # model and the aligned models of --ifeval-seeds only
    chosen = {int(s) for s in getattr(args, "ifeval_seeds", "0").split(",")}
    signals = set((getattr(args, "ifeval_signals", None) or ",".join(s for s, _ in runs)).split(","))
    models = {
        "base": None,
        **{f"{s}-s{seed}": run for (s, seed), run in runs.items() if seed in chosen and s in signals},
    }
    for key, run in models.items():
        if key in done.get("models", {}) or not rows:
            continue
        folder = str(run / "rounds/0/model") if run else HFOptions().model
        model = HFChatModel(HFOptions(model=folder, batch_size=16))
        print(f"bench: IFEval and style, {key}", flush=True)
        done.setdefault("models", {})[key] = ifeval_and_style(model, rows, prompts, args.ifeval_max_new_tokens)
        cache.write_text(json.dumps(done, indent=2))
    cache.write_text(json.dumps(done, indent=2))
    print(markdown(done, runs, len(rows)))


def _style(model: dict[str, Any]) -> str:
    return f"{model['answer_tokens']:.0f} ({model['clipped']:.0%})"


def _training(run: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    head, tail = rows[: max(1, len(rows) // 4)], rows[-max(1, len(rows) // 4) :]

    def mean(part: list[dict], key: str) -> float:
        return statistics.fmean(r.get(key, float("nan")) for r in part)

    return {
        "clipped_first": mean(head, "clipped_fraction"),
        "clipped_last": mean(tail, "clipped_fraction"),
        "length_first": mean(head, "completion_length"),
        "length_last": mean(tail, "completion_length"),
    }


def markdown(done: dict[str, Any], runs: dict[tuple[str, int], Path], n_ifeval: int) -> str:
    """The BENCHMARKS.md tables."""
    out = ["| signal | calibration pairs | held-out pairs |", "| --- | --- | --- |"]
    for name, acc in done["signals"].items():
        out.append(f"| {name} | {_pct(acc['calibration'])} | {_pct(acc['held_out'])} |")
    base = done.get("models", {}).get("base", {})
    out += [
        "",
        "| signal | seed | implicit reward, per token | summed | likelihood-adjusted "
        "| preference base -> aligned (per token) "
        "| gap closed | greedy tokens (clipped) base -> aligned | train clipped first -> last "
        f"| IFEval strict ({n_ifeval}) base -> aligned | wall | peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (signal, seed), run in sorted(runs.items()):
        efficacy = json.loads((run / "eval/results.json").read_text())["efficacy"]
        pairs, gap = efficacy["pairs"], efficacy["gap"]
        bench = json.loads((run / "bench.json").read_text())
        model = done.get("models", {}).get(f"{signal}-s{seed}", {})
        train = _training(run)
        style = f"{_style(base)} -> {_style(model)}" if model and base else "n/a"
        ife = f"{base['ifeval_strict']:.1%} -> {model['ifeval_strict']:.1%}" if model and base else "n/a"
        gap_text = f"{gap['gap_closed']:.0%} [{gap['ci95'][0]:.0%}, {gap['ci95'][1]:.0%}]"
        preference = (
            f"{pairs['preference_base_per_token']['accuracy']:.0%} -> "
            f"{pairs['preference_aligned_per_token']['accuracy']:.0%}"
        )
        out.append(
            f"| {signal} | {seed} | {_pct(pairs['implicit_reward_per_token'])} "
            f"| {_pct(pairs['implicit_reward_summed'])} "
            f"| {_pct(pairs['implicit_reward_adjusted'])} "
            f"| {preference} "
            f"| {gap_text} | {style} | {train['clipped_first']:.0%} -> {train['clipped_last']:.0%} | {ife} "
            f"| {bench['seconds'] / 60:.1f} min | {bench['peak_gb']:.2f} GB |"
        )
    return "\n".join(out)
