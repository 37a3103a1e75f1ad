"""Built-in rewarder `self-reward`: the policy being trained scores its own candidates against
the value's holistic rubric (the paper's self-rewarding mechanism)."""

from dynalign import hookimpl
from dynalign_selfreward.rewarder import SelfRewarder


@hookimpl
def register_rewarders(register):
    """Register the `self-reward` rewarder (alias `self`)."""
    register(SelfRewarder)
