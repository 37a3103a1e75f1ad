"""Built-in rewarders `judge` (an external model scores against the value's rubric) and
`negotiation` (agents with different perspectives deliberate), plus `dynalign score`."""

from dynalign import hookimpl
from dynalign_judge.judge import JudgeRewarder
from dynalign_judge.negotiation import NegotiationRewarder


@hookimpl
def register_rewarders(register):
    """Register `judge` (alias `external-judge`) and `negotiation`."""
    register(JudgeRewarder)
    register(NegotiationRewarder)


@hookimpl
def register_commands(register):
    """Register `dynalign score CONFIG INPUT.jsonl --out OUT.jsonl`."""
    from dynalign_judge.score import score

    register(score, name="score")
