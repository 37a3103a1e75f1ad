"""The `eval` stage's work: win rate, judge-check, IFEval and further tasks, written to
RUN_DIR/eval/results.json after every section so that partial results survive (marked)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from dynalign.api import (
    RECORDED_PACKAGES,
    ChatModel,
    DynalignError,
    RunContext,
    RunDirectory,
    UnsupportedError,
    package_versions,
    recorder,
)
from dynalign_eval.answers import greedy_answers
from dynalign_eval.options import EvalError, EvalOptions
from dynalign_eval.rundata import describe, model_path
from dynalign_eval.suites import SUITE_DISTS
from dynalign_eval.winrate import win_rate

RESULTS = "eval/results.json"
SECTIONS = ("efficacy", "win_rate", "judge_check", "ifeval", "ifbench", "safety", "tasks")
Say = Callable[[str], None]


def build_judge(context: RunContext, base: ChatModel, options: EvalOptions) -> tuple[ChatModel, bool]:
    """The eval judge and whether it is the base policy itself (self-judged)."""
    if options.judge is None:
        return base, True
    judge = context.build_model(options.judge, where="eval.judge")
    return judge, judge.describe() == base.describe()


def spread(items: list[Any], n: int | None) -> list[Any]:
    """At most `n` of `items`, taken evenly across them (all of them when `n` is None)."""
    step = max(1, len(items) // n) if n else 1
    return items[::step][:n]


def _ifeval(run_dir: RunDirectory, base: ChatModel, aligned: ChatModel, options: EvalOptions, say: Say) -> dict:
    from dynalign_eval import ifeval

    if not options.ifeval:
        return {"skipped": "ifeval = false"}
    try:
        source = ifeval.default_source(options.ifeval_path)
        rows = ifeval.load_rows(source, options.ifeval_limit)
    except ifeval.IFEvalUnavailable as exc:
        say(f"eval: IFEval skipped: {exc}")
        return {"skipped": str(exc)}
    prompts = [row["prompt"] for row in rows]
    out: dict[str, Any] = {"source": source, "max_new_tokens": options.ifeval_max_new_tokens}
    answers = {}
    for role, model in (("base", base), ("aligned", aligned)):
        say(f"eval: IFEval, {len(rows)} prompts, {role} model")
        answers[role] = greedy_answers(model, prompts, options.ifeval_max_new_tokens, options.seed, say, "eval: IFEval")
        out[role] = ifeval.score(rows, answers[role], options.bootstrap, options.seed)
    out["tokenizers"] = out["base"]["tokenizers"]
    run_dir.rewrite_jsonl(
        "eval/ifeval_answers.jsonl",
        [{"key": r["key"], "base": answers["base"][i], "aligned": answers["aligned"][i]} for i, r in enumerate(rows)],
    )
    return out


def _tasks(base: ChatModel, aligned: ChatModel, options: EvalOptions, say: Say, errors: dict[str, str]) -> dict:
    from dynalign_eval.tasks import run_task

    out: dict[str, Any] = {}
    for task in options.tasks:
        out[task] = {}
        for role, model in (("base", base), ("aligned", aligned)):
            folder = model_path(model)
            try:
                if role == "aligned" and "error" in out[task]["base"]:
                    raise EvalError(f"lm-eval task {task} skipped for the aligned model: it failed for the base model")
                if folder is None:
                    raise EvalError(f"lm-eval task {task} needs a local model folder; the {role} model has none")
                say(f"eval: lm-eval {task}, {role} model")
                out[task][role] = run_task(task, folder, options.tasks_limit, options.allow_download)
            except DynalignError as exc:
                out[task][role] = {"error": str(exc)}
                errors[f"tasks.{task}.{role}"] = str(exc)
                say(f"eval: {exc}")
    return out


def _kept(module: str, name: str) -> Callable[..., dict[str, Any]]:
    """A capability- or safety-kept section, imported when it runs (they import this module)."""
    return getattr(importlib.import_module(f"dynalign_eval.{module}"), name)


def _win_records(options: EvalOptions) -> list[Any] | None:
    if options.win_rate_prompts == "held_out":
        return None
    from dynalign_eval.mtbench import load_records

    return load_records()


def evaluate(
    run_dir: RunDirectory,
    context: RunContext,
    base: ChatModel,
    aligned: ChatModel,
    options: EvalOptions,
    say: Say = print,
) -> dict[str, Any]:
    """Evaluate `aligned` against `base`; raises EvalError (after saving) if a section failed."""
    started = time.time()
    judge, self_judged = build_judge(context, base, options)
    results: dict[str, Any] = {
        "status": "running",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "value": context.value.name,
        "settings": options.model_dump(mode="json"),
        "models": {"base": describe(base), "aligned": describe(aligned), "judge": describe(judge)},
        "self_judged": self_judged,
        "versions": package_versions((*RECORDED_PACKAGES, "lm-eval", "nltk", "numpy", *SUITE_DISTS)),
        "pending": list(SECTIONS),
        "errors": {},
    }
    if self_judged:
        say("eval: judge is the base policy itself (self_judged: true); set eval options.judge for an outside judge")
    run_dir.write_json(RESULTS, results)

    def judge_check_section() -> dict[str, Any]:
        from dynalign_eval.judgecheck import judge_check

        if not options.judge_check:
            return {"skipped": "judge_check = false"}
        return judge_check(context.value, judge, mode=options.judge_mode, max_new_tokens=options.judge_max_new_tokens)

    def efficacy_section() -> dict[str, Any]:
        from dynalign_eval.efficacy import efficacy

        if not options.efficacy:
            return {"skipped": "efficacy = false"}
        if options.efficacy_split == "calibration":  # spread over the file: pairs are grouped by pillar
            gap_prompts = spread([p.prompt for p in context.value.calibration], options.efficacy_prompts)
        else:
            prompts = run_dir.read_prompts()
            gap_prompts = [r.prompt for r in (prompts.held_out if prompts else [])]
        try:
            return efficacy(
                context.value,
                base,
                aligned,
                gap_prompts[: options.efficacy_prompts],
                split=options.efficacy_split,
                samples=options.efficacy_samples,
                max_new_tokens=options.efficacy_max_new_tokens,
                resamples=options.bootstrap,
                seed=options.seed,
                say=say,
            )
        except UnsupportedError as exc:  # a backend without token log-probabilities
            return {"skipped": str(exc)}

    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "efficacy": efficacy_section,
        "win_rate": lambda: win_rate(run_dir, context.value, base, aligned, judge, options, say, _win_records(options)),
        "judge_check": judge_check_section,
        "ifeval": lambda: _ifeval(run_dir, base, aligned, options, say),
        "ifbench": lambda: _kept("capability", "ifbench_section")(run_dir, base, aligned, options, say),
        "safety": lambda: _kept("safety", "safety_section")(run_dir, context, base, aligned, options, say),
        "tasks": lambda: _tasks(base, aligned, options, say, results["errors"]),
    }
    record = recorder(run_dir)
    results["section_seconds"] = {}
    for name in SECTIONS:
        began = time.perf_counter()
        try:
            results[name] = sections[name]()
        except DynalignError as exc:
            results[name] = {"error": str(exc)}
            results["errors"][name] = str(exc)
            say(f"eval: {name} failed: {exc}")
        seconds = time.perf_counter() - began
        results["section_seconds"][name] = round(seconds, 2)
        if seconds >= 0.05:  # skipped sections are not phases
            record(f"eval: {name}", seconds)
        results["pending"].remove(name)
        run_dir.write_json(RESULTS, results)
    results["status"] = "partial" if results["errors"] else "complete"
    results["seconds"] = round(time.time() - started, 1)
    path = run_dir.write_json(RESULTS, results)
    say(f"eval: {summary(results)}")
    if results["errors"]:
        first = next(iter(results["errors"].values()))
        raise EvalError(f"eval finished with {len(results['errors'])} error(s), partial results in {path}: {first}")
    say(f"eval: results in {path}")
    return results


def summary(results: dict[str, Any]) -> str:
    """Headline numbers of an eval as one line."""
    from dynalign_eval.efficacy import summary as efficacy_summary

    parts = [efficacy_summary(results.get("efficacy") or {})] if results.get("efficacy") else []
    parts = [p for p in parts if p]
    win = results.get("win_rate") or {}
    if "win_rate" in win:
        low, high = win["ci95"]
        judged = " (self-judged)" if results.get("self_judged") else ""
        parts.append(f"win rate {win['win_rate']:.1%} [{low:.1%}, {high:.1%}]{judged}, LC {win['lc_win_rate']:.1%}")
    ife = results.get("ifeval") or {}
    if "base" in ife and "aligned" in ife:
        b, a = ife["base"]["prompt_level_strict_acc"], ife["aligned"]["prompt_level_strict_acc"]
        parts.append(f"IFEval prompt-strict base {b:.1%} -> aligned {a:.1%}")
    for module, section in (("capability", "ifbench"), ("safety", "safety")):
        line = _kept(module, "summary")(results.get(section) or {})
        parts += [line] if line else []
    check = results.get("judge_check") or {}
    if "pairwise_accuracy" in check:
        parts.append(f"judge pairwise acc {check['pairwise_accuracy']:.2f}")
    return "; ".join(parts) or "no results"
