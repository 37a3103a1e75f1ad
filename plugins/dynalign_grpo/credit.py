"""The dense value-context credit from the loss's own forward pass.

`context_distillation` adds log pi_initial(y_t | teacher, x) - log pi(y_t | x) to each
completion token's advantage, and `log_kl` logs the KL to the initial policy from the same
log pi(y_t | x). That is the live policy's log-probability of each completion in the loss
context, which TRL's loss computes anyway, with gradients, a moment later. When the loss runs
under the very weights that sampled the batch (one pass over each generation batch, no
optimizer step in between, TRL's own condition for skipping `old_per_token_logps`) and at
temperature 1, the loss pass's values are the ones wanted: the credit is then added there, from
its detached log-probabilities, instead of after a separate no-grad pass over the same tokens.
The advantages the loss uses are the same up to float rounding (a test compares loss and
gradient with the separate pass's).

The initial policy's sides (teacher and loss context) are computed with the batch, as before,
and travel in it under `TEACHER` and `INITIAL`, so TRL's shuffling and splitting keep them
aligned with their rows.
"""

from __future__ import annotations

from typing import Any

from dynalign.api import DynalignError

TEACHER = "credit_teacher_logps"
INITIAL = "credit_initial_logps"


def credit_in_loss_pass(trainer: Any) -> bool:
    """Whether the loss pass can give the live policy's log-probabilities the credit needs: it runs
    once per sampled row, before any optimizer step since sampling, at temperature 1 (TRL's fused
    head divides by the temperature), and nothing before the loss needs them (`context_correction`
    reweights the advantages with them at sampling time)."""
    args = trainer.args
    generate_every = args.steps_per_generation * trainer.num_iterations
    return (
        trainer.temperature == 1.0
        and args.gradient_accumulation_steps % generate_every == 0
        and not trainer.options.context_correction
    )


class LossPassCredit:
    """Trainer mixin: applies the credit parked in a batch (`TEACHER`, `INITIAL`) with the
    log-probabilities of the loss's forward pass; the trainer provides `_apply_credit`."""

    _credit_inputs: dict[str, Any] | None = None

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
        self._credit_inputs = inputs if TEACHER in inputs or INITIAL in inputs else None
        try:
            loss = super()._compute_loss(model, inputs)  # type: ignore[misc]
        finally:
            self._credit_inputs = None
        if TEACHER in inputs or INITIAL in inputs:  # a TRL whose loss no longer makes that pass: never drop it silently
            raise DynalignError(
                "the dense credit was not applied: TRL's loss made no per-token log-probability pass; "
                "install the TRL version pyproject.toml pins (trl>=1.16,<1.17)"
            )
        return loss

    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._get_per_token_logps_and_entropies(*args, **kwargs)  # type: ignore[misc]
        inputs, self._credit_inputs = self._credit_inputs, None
        if inputs is not None:  # the loss's own pass: TRL reads the advantages after it
            policy = result[0].detach().float()
            self._apply_credit(inputs, policy, inputs.pop(TEACHER, None), inputs.pop(INITIAL, None))  # type: ignore[attr-defined]
        return result
