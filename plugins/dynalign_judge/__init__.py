"""Built-in rewarders `judge` (an external model scores against the value's rubric) and
`negotiation` (agents with different perspectives deliberate)."""

from dynalign import hookimpl
from dynalign_judge.judge import JudgeRewarder
from dynalign_judge.negotiation import NegotiationRewarder


@hookimpl
def register_rewarders(register):
    """Register `judge` (alias `external-judge`) and `negotiation`."""
    register(JudgeRewarder)
    register(NegotiationRewarder)
