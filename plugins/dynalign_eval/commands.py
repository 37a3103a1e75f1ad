"""The `dynalign eval`, `dynalign report` and `dynalign judge-check` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from dynalign.api import ConfigError, ModelRef, RunContext, RunDirectory, open_stack, validate_options
from dynalign_eval.options import EvalOptions, JudgeMode, ReportOptions

JudgeOption = Annotated[
    str | None,
    typer.Option(
        "--judge",
        help="Judge: a model for the policy's backend (folder, hub id, embedded:NAME), BACKEND:MODEL, "
        'or JSON {"backend": ..., "options": {...}}. Default: the policy itself.',
    ),
]


def parse_judge(spec: str | None, policy: ModelRef, context: RunContext) -> ModelRef | None:
    """A judge `ModelRef` from the command line's --judge (None: use the policy)."""
    if spec is None:
        return None
    if spec.lstrip().startswith("{"):
        try:
            return ModelRef.model_validate(json.loads(spec))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ConfigError(f"--judge: not a valid {{backend, options}} JSON object: {exc}") from exc
    backend, _, model = spec.partition(":")
    if model and any(entry.name == backend or backend in entry.aliases for entry in context.registry.entries("model")):
        return ModelRef(backend=backend, options={"model": model})
    return ModelRef(backend=policy.backend, options={**policy.options, "model": spec})


def _options(cls: type, base: dict[str, Any], where: str, **overrides: Any) -> Any:
    return validate_options(cls, {**base, **{k: v for k, v in overrides.items() if v is not None}}, where)


def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    limit: Annotated[int | None, typer.Option(help="At most N held-out, IFEval and task prompts (quick runs).")] = None,
    judge: JudgeOption = None,
    judge_mode: Annotated[JudgeMode | None, typer.Option(help="auto, probs or generate.")] = None,
    ifeval: Annotated[str | None, typer.Option(help="IFEval input_data.jsonl (hub:google/IFEval downloads).")] = None,
    task: Annotated[list[str] | None, typer.Option(help="Further lm-eval task (repeatable).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Answer length for win-rate prompts.")] = None,
) -> None:
    """Evaluate a run: value win rate over the base model, judge-check, IFEval, lm-eval tasks."""
    from dynalign_eval.evaluate import evaluate
    from dynalign_eval.rundata import final_model_dir

    stack = open_stack(run_dir=run_dir)
    run = RunDirectory(run_dir)
    final = final_model_dir(run)
    judge_ref = parse_judge(judge, stack.config.policy, stack.context)
    options = _options(
        EvalOptions,
        stack.stage_options("eval"),
        f"{run_dir}/config.json: stages.eval.options",
        limit=limit,
        ifeval_limit=limit,
        tasks_limit=limit,
        judge=judge_ref.model_dump() if judge_ref else None,
        judge_mode=judge_mode,
        ifeval_path=ifeval,
        tasks=task or None,
        max_new_tokens=max_new_tokens,
    )
    evaluate(run, stack.context, stack.policy, stack.policy_at(final), options, typer.echo)


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (evaluated or not).")],
    samples: Annotated[int | None, typer.Option(help="Rows of base vs aligned answers.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for index.html and PNGs (default RUN_DIR/report).")] = None,
) -> None:
    """Write one self-contained HTML page (plus PNGs) about a run and print its path."""
    from dynalign_eval.report import write_report

    stack = open_stack(run_dir=run_dir)
    options = _options(
        ReportOptions, stack.stage_options("report"), f"{run_dir}: stages.report.options", samples=samples, out=out
    )
    typer.echo(str(write_report(RunDirectory(run_dir), options)))


def judge_check_command(
    config: Annotated[Path | None, typer.Argument(help="Config file; none: the default CA stack.")] = None,
    judge: JudgeOption = None,
    mode: Annotated[JudgeMode, typer.Option(help="auto, probs or generate.")] = "auto",
    limit: Annotated[int | None, typer.Option(help="At most N calibration pairs.")] = None,
    signal: Annotated[
        list[str] | None, typer.Option(help="Self-signal to measure (repeatable); default: all the rewarders offer.")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Exit non-zero when an accuracy is below this.")] = 0.0,
    out: Annotated[Path | None, typer.Option(help="Also write the full results as JSON here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full results as JSON.")] = False,
) -> None:
    """Check how well a judge (default: the policy) and each self-signal of the config's
    rewarders separate the value's calibration pairs."""
    from dynalign.api import atomic_write_text
    from dynalign_eval.judgecheck import JudgeCheckError, check_stack, problems

    say = None if as_json else typer.echo
    stack = open_stack(config, say=say)
    ref = parse_judge(judge, stack.config.policy, stack.context)
    result = check_stack(stack, judge=ref, mode=mode, limit=limit, signals=signal, say=say, where="judge")
    if out is not None:
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    found = problems(result, threshold)
    if found:
        raise JudgeCheckError(found[0])
