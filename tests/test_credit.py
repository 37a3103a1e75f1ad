"""The value-context credit taken from the loss's own forward pass (`dynalign_grpo.credit`) gives
the loss and gradient of the separate no-grad pass it replaces, and is used only where it may be."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from unittest.mock import patch

import pytest
import torch
from test_grpo import _trainer

from dynalign_grpo.credit import INITIAL, TEACHER
from dynalign_hf.handle import HFPolicyHandle

HI = [{"prompt": [{"role": "user", "content": "Hi"}]}] * 2


def _by_length(prompts, completions, **kw):
    return [float(len(c[0]["content"])) for c in completions]


def _bound(trainer, tokenizer):
    trainer.reference_policy = lambda: nullcontext(trainer.model)
    trainer.policy_handle = HFPolicyHandle(trainer.model, tokenizer, trainer.reference_policy)
    return trainer


def _loss_and_grads(trainer, batch):
    trainer.model.train()  # as in training (TRL's loss scales by the accumulation steps train() sets)
    trainer.current_gradient_accumulation_steps = 1
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]


def test_loss_pass_credit_equals_the_separate_pass(tiny_model_dir, tmp_path, ca_value):
    """Same advantages, loss, gradient and logged gap and KL as the separate live-policy pass."""
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, _by_length, context_distillation=2.0)
    torch.manual_seed(0)
    deferred = _bound(trainer, tokenizer)._generate_and_score_completions(HI)
    assert TEACHER in deferred and INITIAL in deferred
    before = copy.deepcopy(deferred)
    loss, grads = _loss_and_grads(trainer, deferred)
    logged = {k: trainer._metrics["train"][k][-1] for k in ("context/distill_gap", "kl")}
    assert TEACHER not in deferred and INITIAL not in deferred  # applied once

    teacher, initial = before.pop(TEACHER), before.pop(INITIAL)
    trainer._apply_credit(before, trainer._logps("loss", before, reference=False), teacher, initial)
    plain_loss, plain_grads = _loss_and_grads(trainer, before)
    torch.testing.assert_close(deferred["advantages"], before["advantages"], rtol=0, atol=1e-5)
    torch.testing.assert_close(loss, plain_loss, rtol=0, atol=1e-5)
    assert len(grads) == len(plain_grads) > 0
    for mine, theirs in zip(grads, plain_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)
    for key, value in logged.items():
        assert value == pytest.approx(trainer._metrics["train"][key][-1], abs=1e-5)


@pytest.mark.parametrize("option", [{"context_correction": True}, {"temperature": 0.7}])
def test_the_separate_pass_is_kept_where_the_loss_pass_cannot_stand_in(tiny_model_dir, tmp_path, ca_value, option):
    """With context_correction (the live side is needed before the loss) or another temperature
    (the loss's log-probabilities are tempered), the credit is in the advantages at sampling time."""
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, _by_length, context_distillation=1.0, **option)
    batch = _bound(trainer, tokenizer)._generate_and_score_completions(HI)
    assert TEACHER not in batch and INITIAL not in batch
    assert batch["advantages"].shape == batch["completion_ids"].shape  # the per-token credit is in


def test_a_loss_without_the_pass_fails_loudly_instead_of_dropping_the_credit(tiny_model_dir, tmp_path, ca_value):
    """If TRL's loss stopped calling `_get_per_token_logps_and_entropies`, the parked credit would
    go unused: that is an error, not a silent change of the objective."""
    from dynalign.api import DynalignError

    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, _by_length, context_distillation=1.0)
    torch.manual_seed(0)
    batch = _bound(trainer, tokenizer)._generate_and_score_completions(HI)
    assert TEACHER in batch
    with patch("trl.GRPOTrainer._compute_loss", lambda self, model, inputs: torch.tensor(0.0)):
        with pytest.raises(DynalignError, match="dense credit was not applied"):
            trainer._compute_loss(trainer.model, batch)
