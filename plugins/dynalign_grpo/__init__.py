"""Built-in optimizer `grpo`: group-relative policy optimisation on TRL's GRPOTrainer, with the
value's system prompt shown during generation and left out of the sequence the loss sees."""

from dynalign import hookimpl
from dynalign_grpo.optimizer import GRPOOptimizer


@hookimpl
def register_optimizers(register):
    """Register the `grpo` optimizer."""
    register(GRPOOptimizer)
