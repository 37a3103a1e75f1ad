"""Built-in evaluation plugin: stages `eval` and `report`, commands `dynalign eval`,
`dynalign report` and `dynalign judge-check`.

Only light modules are imported here: torch, transformers, lm-eval and matplotlib load inside
the functions that need them, so `dynalign plugins` stays fast.
"""

from dynalign import hookimpl
from dynalign_eval.stages import EvalStage, JudgeCheckStage, ReportStage


@hookimpl
def register_stages(register):
    """Register the `judge-check`, `eval` and `report` stages."""
    register(JudgeCheckStage)
    register(EvalStage)
    register(ReportStage)


@hookimpl
def register_commands(register):
    """Register `dynalign eval`, `dynalign report` and `dynalign judge-check`."""
    from dynalign_eval.commands import eval_command, judge_check_command, report_command

    register(eval_command, name="eval")
    register(report_command, name="report")
    register(judge_check_command, name="judge-check")
