"""Distillation from the teacher context: the sampled-token credit under a longer teacher, and
the distribution-level top-k term (off: exactly today's loss; on: a gradient toward the teacher)."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from test_grpo import _hand_logps, _trainer
from trl import GRPOTrainer

from dynalign_grpo.topk import topk_distillation_loss, topk_kl_per_token
from dynalign_hf.handle import HFPolicyHandle

TEACHER = "Be generous and specific.\n\nExamples of answers that do this well:\n\nRequest: Hi\nA good answer: Hello!"
HI = [{"prompt": [{"role": "user", "content": "Hi"}]}] * 2


def _bound(trainer, tokenizer, handle=True):
    trainer.reference_policy = lambda: nullcontext(trainer.model)  # initial = current, before any step
    if handle:
        trainer.policy_handle = HFPolicyHandle(trainer.model, tokenizer, trainer.reference_policy)
    return trainer


def _equal(prompts, completions, **kw):
    return [1.0] * len(completions)  # GRPO's own advantages are then 0


@pytest.mark.parametrize("handle", [True, False])
def test_dense_credit_comes_from_the_teacher_context(tiny_model_dir, tmp_path, ca_value, handle):
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, _equal, context_distillation=1.0)
    trainer.teacher_system_prompt = TEACHER
    batch = _bound(trainer, tokenizer, handle)._generate_and_score_completions(HI)
    trainer._compute_loss(trainer.model, batch)  # which adds the credit (dynalign_grpo.credit)
    mask = batch["completion_mask"]
    teacher_ids = tokenizer.apply_chat_template(
        [{"role": "system", "content": TEACHER}, {"role": "user", "content": "Hi"}],
        add_generation_prompt=True,
        tokenize=True,
    )
    teacher_ids = teacher_ids["input_ids"] if hasattr(teacher_ids, "keys") else teacher_ids
    for row in range(2):
        tokens = batch["completion_ids"][row][mask[row].bool()].tolist()
        taught = _hand_logps(trainer.model, list(teacher_ids), tokens)
        bare = _hand_logps(trainer.model, trainer.last_loss_prompt_ids[row], tokens)
        assert torch.allclose(batch["advantages"][row][mask[row].bool()], taught - bare, atol=1e-4)
    assert TEACHER not in tokenizer.decode(trainer._generation_prompt_ids[0])  # generation keeps the value prompt


def test_topk_off_is_exactly_todays_loss(tiny_model_dir, tmp_path, ca_value):
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, context_distillation=1.0)
    batch = _bound(trainer, tokenizer)._generate_and_score_completions(HI)
    assert "teacher_topk_ids" not in batch
    torch.manual_seed(0)
    ours = trainer._compute_loss(trainer.model, batch)
    torch.manual_seed(0)
    trls = GRPOTrainer._compute_loss(trainer, trainer.model, batch)
    assert torch.equal(ours, trls)
    assert "context/topk_kl" not in trainer._metrics["train"]


def test_topk_term_adds_the_teachers_distribution_to_the_loss(tiny_model_dir, tmp_path, ca_value):
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, distillation_topk=5, distillation_topk_weight=0.5)
    trainer.teacher_system_prompt = TEACHER
    batch = _bound(trainer, tokenizer)._generate_and_score_completions(HI)
    ids, logps, mask = batch["teacher_topk_ids"], batch["teacher_topk_logps"], batch["completion_mask"].bool()
    assert ids.shape == (*mask.shape, 5)
    assert torch.all(logps[mask][:, :-1] >= logps[mask][:, 1:])  # most likely first
    row_tokens = batch["completion_ids"][0][mask[0]].tolist()
    taught = trainer.policy_handle.completion_logprobs(trainer._conversations["teacher"][:1], [row_tokens])[0]
    top1 = torch.tensor(taught) <= logps[0][mask[0]][:, 0] + 1e-5  # no sampled token beats the teacher's first
    assert bool(top1.all())
    loss = trainer._compute_loss(trainer.model, batch)
    plain = GRPOTrainer._compute_loss(trainer, trainer.model, batch)
    logged = trainer._metrics["train"]["context/topk_kl"][-1]
    assert logged > 0 and torch.allclose(loss, plain + 0.5 * logged, atol=1e-5)


def test_the_topk_terms_gradient_moves_a_tiny_model_toward_the_teacher(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    teacher = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():  # a different teacher: the same model with its output layer shaken
        teacher.lm_head.weight.add_(0.5 * torch.randn_like(teacher.lm_head.weight))
    tokens = torch.tensor([[1, 42, 7, 99, 12, 5, 300, 8]])
    mask = torch.ones(1, tokens.shape[1] - 1)
    with torch.no_grad():
        top = torch.log_softmax(teacher(tokens).logits[:, :-1], dim=-1).topk(8, dim=-1)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)

    def measured():
        logits = student(tokens).logits[:, :-1]
        return topk_distillation_loss(logits, top.indices, top.values, mask), logits

    before, logits = measured()
    mass_before = torch.softmax(logits, -1).gather(-1, top.indices).sum(-1).mean()
    for _ in range(5):
        optimizer.zero_grad()
        loss, _ = measured()
        loss.backward()
        optimizer.step()
    after, logits = measured()
    mass_after = torch.softmax(logits, -1).gather(-1, top.indices).sum(-1).mean()
    assert after < before and mass_after > mass_before  # closer to the teacher, more mass on its top-k


def test_the_topk_kl_is_zero_only_when_the_student_is_the_teacher():
    logits = torch.randn(2, 3, 11)
    top = torch.log_softmax(logits, -1).topk(4, dim=-1)
    same = topk_kl_per_token(logits, top.indices, top.values)
    assert torch.allclose(same, torch.zeros_like(same), atol=1e-5)
    other = topk_kl_per_token(logits.flip(-1), top.indices, top.values)
    assert torch.all(other > 1e-3)


def test_a_policy_handle_without_top_k_says_so_in_one_line():
    from dynalign.api import PolicyHandle, UnsupportedError

    class ScoresOnly(PolicyHandle):
        """A backend's handle that implements no top-k pass."""

    with pytest.raises(UnsupportedError, match="cannot give top-k log-probabilities"):
        ScoresOnly().completion_topk([[{"role": "user", "content": "Hi"}]], ["Hello"], 2)
