"""The loss pass with each group's prompt computed once (`dynalign_grpo.shared_prompt`) gives TRL's
log-probabilities, entropies, loss and gradient, under gradient checkpointing, with LoRA and with
full fine-tuning, and steps aside where it cannot be exact."""

from __future__ import annotations

import pytest
import torch

from dynalign_grpo import plain_head
from dynalign_grpo.shared_prompt import can_share, shared_prompt_logps

PROMPTS = ["Plan a street party.", "How do I share a garden with my neighbours, fairly?"]


def _trainer(model_dir, tmp_path, ca_value, *, lora: bool, **options):
    """A trainer on the model in `model_dir` with 2 distinct prompts x G = 3 per step (6 rows)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dynalign_grpo.options import GRPOOptions, build_grpo_config
    from dynalign_grpo.trainer import ValueContextGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    grpo = GRPOOptions(num_generations=3, prompts_per_step=2, max_steps=1, max_completion_length=6, **options)
    peft = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM") if lora else None
    trainer = ValueContextGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        reward_funcs=[lambda prompts, completions, **kw: [float(len(c[0]["content"])) for c in completions]],
        args=build_grpo_config(grpo, tmp_path / "ckpt", 0, [1.0]),
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS] * 3),
        processing_class=tokenizer,
        peft_config=peft,
        options=grpo,
        value_system_prompt=ca_value.system_prompt.strip(),
    )
    # as Trainer.train() does (TRL's default); transformers' default checkpointing is non-reentrant
    base = trainer.model.get_base_model() if lora else trainer.model
    enable = getattr(base, "activation_checkpointing_enable", None) or base.gradient_checkpointing_enable  # older name
    enable()
    if lora:  # a fresh adapter is zero; make it matter, so its gradient through the prompt is checked too
        torch.manual_seed(1)
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.data.normal_(0, 0.05)
    return trainer


def _batch(trainer):
    torch.manual_seed(0)
    inputs = [{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS for _ in range(3)]
    batch = trainer._generate_and_score_completions(inputs)
    widths = batch["prompt_mask"].sum(dim=1)
    assert len(set(widths.tolist())) == 2 and (batch["prompt_mask"][:, 0] == 0).any()  # left padding present
    return batch


def _run(trainer, batch, *, share: bool):
    """Loss, gradients, per-token log-probabilities and entropies, and the tokens the policy embedded."""
    trainer.options = trainer.options.model_copy(update={"share_loss_prompt": share})
    model = trainer.model
    model.train()
    trainer.current_gradient_accumulation_steps = 1
    model.zero_grad()
    seen = []
    embed = model.get_input_embeddings()
    hook = embed.register_forward_hook(lambda module, args, out: seen.append(args[0].numel()))
    try:
        captured = {}
        original = trainer._get_per_token_logps_and_entropies

        def spy(*args, **kwargs):
            captured["result"] = original(*args, **kwargs)
            return captured["result"]

        trainer._get_per_token_logps_and_entropies = spy
        loss = trainer._compute_loss(model, batch)
        loss.backward()
    finally:
        hook.remove()
        del trainer._get_per_token_logps_and_entropies
    logps, entropies, _ = captured["result"]
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, logps.detach(), entropies.detach(), sum(seen)


def _assert_shared_equals_plain(trainer, tolerance: float) -> None:
    assert trainer.args.gradient_checkpointing and trainer.model.is_gradient_checkpointing
    assert all(layer.gradient_checkpointing for layer in trainer.model.get_decoder().layers)
    batch = _batch(trainer)
    shared = _run(trainer, batch, share=True)
    plain = _run(trainer, batch, share=False)
    mask = batch["completion_mask"].bool()
    torch.testing.assert_close(shared[2][mask], plain[2][mask], rtol=0, atol=tolerance)
    torch.testing.assert_close(shared[3][mask], plain[3][mask], rtol=0, atol=tolerance)
    torch.testing.assert_close(shared[0], plain[0], rtol=0, atol=tolerance / 10)
    assert shared[1].keys() == plain[1].keys() and len(plain[1]) > 0
    for name, grad in plain[1].items():
        # relative to the whole tensor: the GRPO loss is a near-cancelling sum, so single
        # elements carry the rounding of two heads that sum a 49k vocabulary in different orders
        error = (shared[1][name] - grad).norm() / grad.norm().clamp(min=1e-12)
        assert error <= 5 * tolerance, (name, float(error))
    assert any(grad.abs().sum() > 0 for grad in plain[1].values())
    rows, prompt_width = batch["prompt_ids"].shape
    width = prompt_width + batch["completion_ids"].shape[1]
    assert plain[4] == rows * width
    assert shared[4] == 2 * (prompt_width - 1) + rows * (width - prompt_width + 1)


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_shared_prompt_loss_equals_trls_pass(tiny_model_dir, tmp_path, ca_value, lora):
    """Same loss, gradient, log-probabilities and entropies as TRL's pass over every row's whole
    prompt, with gradient checkpointing on (TRL's default), while embedding fewer tokens."""
    _assert_shared_equals_plain(_trainer(tiny_model_dir, tmp_path, ca_value, lora=lora), 1e-5)


@pytest.mark.parametrize("head", ["plain", "fused"])
def test_either_head_gives_trls_numbers_at_a_temperature_with_an_entropy_bonus(
    tiny_model_dir, tmp_path, ca_value, monkeypatch, head
):
    """On a CPU the shared pass takes the model's own logits while they fit (`plain_head`), TRL's
    fused head past `HEAD_BYTES`; both give TRL's numbers at a temperature other than 1, with the
    entropy bonus on (so the entropies' gradient counts too)."""
    if head == "fused":
        monkeypatch.setattr(plain_head, "HEAD_BYTES", 0)
    modes = []
    original = plain_head.completion_logps
    monkeypatch.setattr(plain_head, "completion_logps", lambda *a: modes.append(a[-1]) or original(*a))
    trainer = _trainer(tiny_model_dir, tmp_path, ca_value, lora=True, temperature=0.7, trl={"entropy_coef": 0.05})
    assert trainer._entropy_bonus_enabled and trainer.temperature == 0.7
    _assert_shared_equals_plain(trainer, 1e-5)
    assert modes == (["grad"] if head == "plain" else [])


def test_the_plain_head_is_for_cpu_logits_that_fit(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    vocabulary = model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(plain_head, "HEAD_BYTES", 8 * 64 * vocabulary * 4)
    assert plain_head.fits(model, 8, 64)
    assert not plain_head.fits(model, 8, 65)
    assert not plain_head.fits(model.to(torch.bfloat16), 8, 64)  # TRL's head keeps its own casting rules
    assert not plain_head.fits(object(), 8, 64)


@pytest.mark.model
def test_shared_prompt_loss_is_exact_on_smollm2(tmp_path, ca_value):
    from dynalign_hf.backend import resolve_model_path

    folder = resolve_model_path("embedded:smollm2-135m-instruct")
    _assert_shared_equals_plain(_trainer(folder, tmp_path, ca_value, lora=True), 1e-4)


def test_no_gradient_pass_matches_too(tiny_model_dir, tmp_path, ca_value):
    """Without gradients (TRL's old-policy and reference passes) the result is the same as well."""
    trainer = _trainer(tiny_model_dir, tmp_path, ca_value, lora=True)
    batch = _batch(trainer)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    width = batch["completion_ids"].shape[1]
    trainer.model.train()
    with torch.no_grad():
        shared = shared_prompt_logps(trainer.model, ids, mask, width)
        trainer.options = trainer.options.model_copy(update={"share_loss_prompt": False})
        plain = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, width, compute_entropy=True)
    assert shared is not None
    keep = batch["completion_mask"].bool()
    torch.testing.assert_close(shared[0][keep], plain[0][keep], rtol=0, atol=1e-5)


def test_rows_without_a_shared_prompt_take_trls_pass(tiny_model_dir, tmp_path, ca_value):
    trainer = _trainer(tiny_model_dir, tmp_path, ca_value, lora=False)
    batch = _batch(trainer)
    distinct = [0, 3]  # one row of each prompt
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)[distinct]
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)[distinct]
    assert shared_prompt_logps(trainer.model, ids, mask, batch["completion_ids"].shape[1]) is None


def test_where_sharing_cannot_be_exact_it_is_not_attempted(tiny_model_dir, tmp_path, ca_value):
    """Reentrant checkpointing (the prefix would get no gradient), images, an auxiliary loss, a
    model wrapped for distributed training: TRL's pass."""
    trainer = _trainer(tiny_model_dir, tmp_path, ca_value, lora=False)
    model = trainer.model
    assert can_share(model, model, 6, {"compute_entropy": True})
    assert not can_share(model, model, 6, {"pixel_values": torch.zeros(1)})
    assert not can_share(model, model, 6, {"compute_aux_loss": True})
    assert not can_share(model, object(), 6, {})
    assert not can_share(model, model, 1, {})
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    assert not can_share(model, model, 6, {})


def test_the_topk_terms_pass_shares_the_prompt_too(tiny_model_dir, tmp_path, ca_value):
    """With `distillation_topk` the loss makes a second pass for the policy's full next-token
    distributions; it shares each prompt as well, with the same loss, gradient and logged KL."""
    import copy
    from contextlib import nullcontext

    from dynalign_hf.handle import HFPolicyHandle

    trainer = _trainer(tiny_model_dir, tmp_path, ca_value, lora=True, context_distillation=1.0, distillation_topk=4)
    trainer.reference_policy = lambda: nullcontext(trainer.model)
    trainer.policy_handle = HFPolicyHandle(trainer.model, trainer.processing_class, trainer.reference_policy)
    batch = _batch(trainer)
    assert "teacher_topk_ids" in batch
    shared = _run(trainer, copy.deepcopy(batch), share=True)
    shared_kl = trainer._metrics["train"]["context/topk_kl"][-1]
    plain = _run(trainer, copy.deepcopy(batch), share=False)
    assert shared_kl > 0 and shared_kl == pytest.approx(trainer._metrics["train"]["context/topk_kl"][-1], abs=1e-6)
    torch.testing.assert_close(shared[0], plain[0], rtol=0, atol=1e-6)
    assert shared[1].keys() == plain[1].keys() and len(plain[1]) > 0
    for name, grad in plain[1].items():
        torch.testing.assert_close(shared[1][name], grad, rtol=1e-4, atol=1e-7, msg=name)
    assert shared[4] < plain[4]
