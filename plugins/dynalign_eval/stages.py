"""The `eval` and `report` stages and their options (light: no heavy imports here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from dynalign.config import ModelRef
from dynalign.errors import DynalignError
from dynalign.interfaces import Options, Stage

JudgeMode = Literal["auto", "probs", "generate"]


class EvalError(DynalignError):
    """Evaluation cannot run or finished with errors (the message says what to fix)."""


class EvalOptions(Options):
    """Options of the `eval` stage (and of `dynalign eval`)."""

    judge: ModelRef | None = Field(
        None, description="Judge model {backend, options}; none: the base policy (self-judged)."
    )
    judge_mode: JudgeMode = Field("auto", description="probs: next-token P(A)/P(B); generate: parse `Winner: X`.")
    judge_max_new_tokens: int = Field(64, ge=1, description="Judge reply length in generate mode.")
    limit: int | None = Field(None, ge=1, description="Use at most this many held-out prompts.")
    max_new_tokens: int = Field(256, ge=1, description="Answer length for the win-rate prompts (greedy).")
    bootstrap: int = Field(2000, ge=100, description="Bootstrap resamples for the 95% intervals.")
    seed: int = 0
    judge_check: bool = Field(True, description="Also run judge-check with the eval judge.")
    efficacy: bool = Field(True, description="Implicit-reward and preference accuracy on held-out pairs, gap closed.")
    efficacy_prompts: int | None = Field(8, ge=1, description="Held-out prompts for gap closed (none: all).")
    efficacy_samples: int = Field(4, ge=1, description="Samples per prompt from the system-prompted base model.")
    efficacy_max_new_tokens: int = Field(64, ge=1, description="Length of those samples.")
    ifeval_path: str | None = Field(
        None, description="IFEval input_data.jsonl (or hub:google/IFEval when online); none skips IFEval."
    )
    ifeval_limit: int | None = Field(None, ge=1, description="Use at most this many IFEval prompts.")
    ifeval_max_new_tokens: int = Field(384, ge=1, description="Answer length for IFEval prompts (greedy).")
    tasks: list[str] = Field(default_factory=list, description="Further lm-eval tasks, e.g. gpqa_diamond_zeroshot.")
    tasks_limit: int | None = Field(None, ge=1, description="lm-eval --limit for the further tasks.")
    allow_download: bool = Field(False, description="Let lm-eval fetch task data from the hub.")


class EvalStage(Stage):
    """Win rate of the aligned model over its base (judged pairwise, both orders), IFEval and
    further lm-eval tasks for both; writes eval/results.json."""

    name = "eval"
    aliases = ("evaluate",)
    Options = EvalOptions
    options: EvalOptions

    def run(self, stack: Any, run_dir: Any, say: Callable[[str], None]) -> None:
        """Evaluate the run's final model against the stack's policy."""
        from dynalign_eval.evaluate import evaluate
        from dynalign_eval.rundata import final_model_dir

        aligned = stack.policy_at(final_model_dir(run_dir))
        evaluate(run_dir, stack.context, stack.policy, aligned, self.options, say)


class JudgeCheckOptions(Options):
    """Options of the `judge-check` stage."""

    judge: ModelRef | None = Field(None, description="Judge {backend, options}; none: the policy (self-judging).")
    judge_mode: JudgeMode = "auto"
    measure_judge: bool = Field(True, description="Measure the judge's pointwise and pairwise verdicts.")
    signals: list[str] | None = Field(
        None, description="Self-signals to measure (names from the rewarders, e.g. contrast-sum); none: all offered."
    )
    threshold: float = Field(0.6, ge=0.0, le=1.0, description="Accuracy expected at least.")
    on_fail: Literal["warn", "stop"] = Field("warn", description="Below the threshold: warn, or stop before training.")
    limit: int | None = Field(None, ge=1, description="Use at most this many calibration pairs.")


class JudgeCheckStage(Stage):
    """Before training: can the judge, and each self-signal the rewarders could use, tell the
    value's better answers from worse ones? Writes judge_check.json; warns (or stops) below
    the threshold. With self-signals measured, the best of them decides."""

    name = "judge-check"
    Options = JudgeCheckOptions
    options: JudgeCheckOptions
    before_training = True

    def run(self, stack: Any, run_dir: Any, say: Callable[[str], None]) -> None:
        """Measure the judge and the self-signals on the value's calibration pairs."""
        from dynalign_eval.judgecheck import (
            JudgeCheckError,
            judge_check,
            judge_quality_problems,
            measure_signals,
            signal_problems,
            summary_line,
        )

        opts = self.options
        pairs = list(stack.value.calibration)[: opts.limit]
        result: dict[str, Any] = {"value": stack.value.name, "n_pairs": len(pairs)}
        if opts.measure_judge:
            judge = stack.policy if opts.judge is None else stack.context.build_model(opts.judge, "stages.judge-check")
            result = judge_check(stack.value, judge, mode=opts.judge_mode, limit=opts.limit, say=say)
            result["self_judged"] = opts.judge is None
            say(summary_line(result))
        result["signals"] = measure_signals(
            [w.rewarder for w in stack.rewarders], stack.policy, pairs, opts.signals, say
        )
        run_dir.write_json("judge_check.json", result)
        if result["signals"]:
            problems = signal_problems(result["signals"], opts.threshold)
        else:
            problems = judge_quality_problems(result, opts.threshold) if opts.measure_judge else []
        if problems and opts.on_fail == "stop":
            raise JudgeCheckError(f"{problems[0]} (on_fail = 'stop'; use a stronger judge or set on_fail = 'warn')")
        for problem in problems:
            say(f"warning: {problem}")


class ReportOptions(Options):
    """Options of the `report` stage (and of `dynalign report`)."""

    samples: int = Field(12, ge=0, description="Rows in the table of base vs aligned answers.")
    out: Path | None = Field(None, description="Folder for index.html and PNGs; default RUN_DIR/report.")


class ReportStage(Stage):
    """One self-contained HTML page (plus PNGs) with training curves, win rate, IFEval,
    judge-check, prompt statistics and sample answers."""

    name = "report"
    Options = ReportOptions
    options: ReportOptions

    def run(self, stack: Any, run_dir: Any, say: Callable[[str], None]) -> None:
        """Write the report of the run."""
        from dynalign_eval.report import write_report

        page = write_report(run_dir, self.options)
        say(f"report: {page}")
