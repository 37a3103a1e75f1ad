"""The `judge-check`, `eval` and `report` stages (light: the work is imported when a stage runs)."""

from __future__ import annotations

from collections.abc import Callable

from dynalign.api import RunDirectory, Stack, Stage
from dynalign_eval.options import EvalOptions, JudgeCheckOptions, ReportOptions


class EvalStage(Stage):
    """Win rate of the aligned model over its base (judged pairwise, both orders), IFEval and
    further lm-eval tasks for both; writes eval/results.json."""

    name = "eval"
    aliases = ("evaluate",)
    Options = EvalOptions
    options: EvalOptions

    def run(self, stack: Stack, run_dir: RunDirectory, say: Callable[[str], None]) -> None:
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

    def run(self, stack: Stack, run_dir: RunDirectory, say: Callable[[str], None]) -> None:
        """Measure the judge and the self-signals on the value's calibration pairs."""
        from dynalign_eval.judgecheck import JudgeCheckError, check_stack, problems

        opts = self.options
        result = check_stack(
            stack,
            judge=opts.judge,
            measure_judge=opts.measure_judge,
            mode=opts.judge_mode,
            limit=opts.limit,
            signals=opts.signals,
            say=say,
        )
        run_dir.write_json("judge_check.json", result)
        found = problems(result, opts.threshold)
        if found and opts.on_fail == "stop":
            raise JudgeCheckError(f"{found[0]} (on_fail = 'stop'; use a stronger judge or set on_fail = 'warn')")
        for problem in found:
            say(f"warning: {problem}")


class ReportStage(Stage):
    """One self-contained HTML page (plus PNGs) with training curves, win rate, IFEval,
    judge-check, prompt statistics and sample answers."""

    name = "report"
    Options = ReportOptions
    options: ReportOptions

    def run(self, stack: Stack, run_dir: RunDirectory, say: Callable[[str], None]) -> None:
        """Write the report of the run."""
        from dynalign_eval.report import write_report

        page = write_report(run_dir, self.options)
        say(f"report: {page}")
