"""The `judge-check`, `eval` and `report` stages (light: the work is imported when a stage runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynalign.interfaces import Stage
from dynalign_eval.options import EvalOptions, JudgeCheckOptions, ReportOptions


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
