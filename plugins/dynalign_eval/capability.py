"""The eval's IFBench section: was instruction following kept? Prompt- and instruction-level
accuracy (strict and loose) of base and aligned on the same prompts, with paired bootstrap
intervals of the difference."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from dynalign.api import ChatModel, MissingExtraError, RunDirectory
from dynalign_eval import ifbench
from dynalign_eval.answers import greedy_answers
from dynalign_eval.evaluate import spread
from dynalign_eval.options import EvalError, EvalOptions
from dynalign_eval.stats import paired_rates
from dynalign_eval.suites import IFBENCH, SuiteUnavailable, version

ANSWERS = "eval/ifbench_answers.jsonl"
Say = Callable[[str], None]


def ifbench_section(
    run_dir: RunDirectory, base: ChatModel, aligned: ChatModel, options: EvalOptions, say: Say
) -> dict[str, Any]:
    """Answer IFBench prompts greedily with both models and score them with IFBench's verifiers."""
    if not options.ifbench:
        return {"skipped": "ifbench = false"}
    try:
        ifbench.verifiers()  # before any answer is generated: a missing package is one line
        available = ifbench.load_rows()
        rows = spread(available, options.ifbench_limit)
    except (SuiteUnavailable, MissingExtraError) as exc:
        say(f"eval: IFBench skipped: {exc}")
        return {"skipped": str(exc)}
    prompts = [row["prompt"] for row in rows]
    answers = {}
    for role, model in (("base", base), ("aligned", aligned)):
        say(f"eval: IFBench, {len(rows)} prompts, {role} model")
        answers[role] = greedy_answers(
            model, prompts, options.ifbench_max_new_tokens, options.seed, say, "eval: IFBench"
        )
    checked = ifbench.score(rows, answers)
    out = summarize(checked, options.bootstrap, options.seed)
    out.update(
        source=f"{IFBENCH.dist} {version(IFBENCH)}",
        n_available=len(available),
        max_new_tokens=options.ifbench_max_new_tokens,
    )
    if out["n_skipped"]:
        say(f"eval: IFBench skipped {out['n_skipped']} of {len(rows)} prompts: {next(iter(out['skipped_why']))}")
    verdicts = {item["key"]: item for item in checked["scored"]}
    run_dir.rewrite_jsonl(
        ANSWERS,
        [
            {
                "key": str(row["key"]),
                "prompt": row["prompt"],
                "base": answers["base"][i],
                "aligned": answers["aligned"][i],
                "strict": {role: verdicts[str(row["key"])][role]["strict"] for role in answers}
                if str(row["key"]) in verdicts
                else None,
            }
            for i, row in enumerate(rows)
        ],
    )
    return out


def summarize(checked: dict[str, Any], resamples: int, seed: int) -> dict[str, Any]:
    """Accuracies with intervals from `ifbench.score`'s output (roles base and aligned)."""
    scored, skipped = checked["scored"], checked["skipped"]
    if not scored:
        raise EvalError(f"IFBench: none of {len(skipped)} prompts could be scored; first: {skipped[0]['why']}")
    out: dict[str, Any] = {
        "n_prompts": len(scored) + len(skipped),
        "n_scored": len(scored),
        "n_skipped": len(skipped),
        "skipped_why": dict(Counter(item["why"] for item in skipped)),
        "skipped_prompts": skipped,
    }
    for mode in ("strict", "loose"):
        base_prompts, base_instructions = ifbench.accuracies(scored, "base", mode)
        aligned_prompts, aligned_instructions = ifbench.accuracies(scored, "aligned", mode)
        out[f"prompt_level_{mode}"] = paired_rates(base_prompts, aligned_prompts, resamples, seed)
        out[f"instruction_level_{mode}"] = paired_rates(base_instructions, aligned_instructions, resamples, seed)
    return out


def summary(section: dict[str, Any]) -> str | None:
    """IFBench's headline for the eval's summary line, or None."""
    found, loose = section.get("prompt_level_strict"), section.get("prompt_level_loose")
    if not found or not loose:
        return None
    diff = found["difference"]
    low, high = diff["ci95"]
    return (
        f"IFBench prompt-strict base {found['base']['rate']:.1%} -> aligned {found['aligned']['rate']:.1%} "
        f"(diff {diff['rate']:+.1%} [{low:+.1%}, {high:+.1%}], n={found['n']}), "
        f"loose {loose['base']['rate']:.1%} -> {loose['aligned']['rate']:.1%}"
    )
