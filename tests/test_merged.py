"""Sampling through merged LoRA adapters (`dynalign_hf.merged`): the same function as the
adapted model, nothing trained is touched, and gradients still reach the adapters."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

PROMPT = "Explain tides to a child in two sentences, please."


def fresh(tiny_model_dir: Any) -> tuple[Any, Any]:
    """The tiny model, loaded for this test alone (`load_model` shares one per process)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def adapted(tiny_model_dir: Any, scale: float = 0.05, **lora: Any) -> tuple[Any, Any]:
    """The tiny model with a LoRA adapter on every linear layer, its B matrices non-zero (as
    after training: a fresh adapter adds nothing, so merging it would prove nothing)."""
    from dynalign_hf.testing import trained_looking_lora

    model, tokenizer = fresh(tiny_model_dir)
    model = trained_looking_lora(model, rank=4, scale=scale, **lora)
    return model, tokenizer


def lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora.layer import Linear

    return [m for m in model.modules() if isinstance(m, Linear)]


def test_merged_layers_compute_what_the_adapters_compute_and_leave_the_model_as_it_was(tiny_model_dir):
    from dynalign_hf.merged import merged_adapters

    model, _ = adapted(tiny_model_dir)
    model.eval()
    ids = torch.randint(3, 200, (2, 9), generator=torch.Generator().manual_seed(1))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with torch.no_grad():
        want = model(input_ids=ids).logits
        with merged_adapters(model) as count:
            assert count == len(lora_layers(model)) > 0
            got = model(input_ids=ids).logits
    assert got == pytest.approx(want, abs=1e-5)
    assert not torch.equal(got, model.get_base_model()(input_ids=ids).logits)  # the adapter counts
    assert all("forward" not in vars(layer) for layer in lora_layers(model))
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())


def test_sampling_through_merged_adapters_gives_the_adapted_models_tokens(tiny_model_dir):
    from dynalign_hf.decoding import sample_loop
    from dynalign_hf.sampling import generate_shared
    from dynalign_hf.textgen import _left_padded, render

    model, tokenizer = adapted(tiny_model_dir, scale=1.0)  # an adapter that changes what is sampled
    batch = _left_padded(tokenizer, [render(tokenizer, [{"role": "user", "content": PROMPT}])], "cpu")
    ids, mask = batch["input_ids"].repeat_interleave(3, 0), batch["attention_mask"].repeat_interleave(3, 0)
    settings = {"max_new_tokens": 12, "min_new_tokens": 12, "do_sample": True, "temperature": 1.0, "top_k": None}
    settings["custom_generate"] = sample_loop  # the plain calls draw as generate_shared does
    torch.manual_seed(3)
    plain = model.generate(input_ids=ids, attention_mask=mask, **settings)
    torch.manual_seed(3)
    assert torch.equal(generate_shared(model, ids, mask, **settings), plain)
    with model.disable_adapter():
        torch.manual_seed(3)
        assert not torch.equal(model.generate(input_ids=ids, attention_mask=mask, **settings), plain)


def test_gradients_inside_the_block_reach_the_adapters(tiny_model_dir):
    """A pass with gradients takes the layer's own forward: training never sees the merged copy."""
    from dynalign_hf.merged import merged_adapters

    model, _ = adapted(tiny_model_dir)
    ids = torch.randint(3, 200, (1, 6), generator=torch.Generator().manual_seed(2))
    with merged_adapters(model):
        model(input_ids=ids).logits.sum().backward()
    grads = [p.grad for name, p in model.named_parameters() if "lora_A" in name]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    "case",
    ["adapters disabled (the reference policy)", "DoRA", "dropout while training", "no adapter"],
)
def test_what_merging_would_change_is_left_alone(tiny_model_dir, case):
    from dynalign_hf.merged import merged_adapters

    if case == "no adapter":
        model, _ = fresh(tiny_model_dir)
        with merged_adapters(model) as count:
            assert count == 0
        return
    lora = {"use_dora": True} if case == "DoRA" else {"lora_dropout": 0.1} if case.startswith("dropout") else {}
    model, _ = adapted(tiny_model_dir, **lora)
    model.train(case.startswith("dropout"))
    if case.startswith("adapters disabled"):
        with model.disable_adapter(), merged_adapters(model) as count:
            assert count == 0
        return
    with merged_adapters(model) as count:
        assert count == 0
    model.eval()  # dropout is off in eval mode: then merging changes nothing, and happens
    if case.startswith("dropout"):
        with merged_adapters(model) as count:
            assert count == len(lora_layers(model))


def test_forwards_are_restored_when_the_block_fails(tiny_model_dir):
    from dynalign_hf.merged import merged_adapters

    model, _ = adapted(tiny_model_dir)
    model.eval()
    with pytest.raises(RuntimeError, match="boom"), merged_adapters(model):
        assert all("forward" in vars(layer) for layer in lora_layers(model))
        raise RuntimeError("boom")
    assert all("forward" not in vars(layer) for layer in lora_layers(model))


def test_a_block_inside_a_block_leaves_the_outer_merge_in_place(tiny_model_dir):
    from dynalign_hf.merged import merged_adapters

    model, _ = adapted(tiny_model_dir)
    model.eval()
    layers = lora_layers(model)
    with merged_adapters(model) as outer:
        forwards = [vars(layer)["forward"] for layer in layers]
        with merged_adapters(model) as inner:
            assert inner == 0 and outer == len(layers)
        assert [vars(layer)["forward"] for layer in layers] == forwards  # the inner exit took none away
    assert all("forward" not in vars(layer) for layer in layers)


def test_the_live_policy_scores_through_merged_adapters(tiny_model_dir, monkeypatch):
    """The handle's scoring calls merge the live policy's adapters for the call (the same
    numbers); the reference's are disabled, so nothing is merged for it."""
    from dynalign_hf import merged
    from dynalign_hf.handle import HFPolicyHandle

    model, tokenizer = adapted(tiny_model_dir, scale=0.5)

    @contextmanager
    def reference() -> Iterator[Any]:  # the initial policy: the same model, its adapters off
        with model.disable_adapter():
            yield model

    handle = HFPolicyHandle(model, tokenizer, reference, batch_size=2)
    conversations = [[{"role": "user", "content": PROMPT}]] * 3
    answers = ["The moon pulls the sea.", "Water rises and falls twice a day.", "No."]
    judged = [[{"role": "user", "content": f"{PROMPT} Rate: {a}"}] for a in answers]
    model.eval()
    with monkeypatch.context() as unmerged:
        unmerged.setattr(merged, "_lora_linear_class", lambda: None)  # no LoRA layer found: the adapters' own forward
        want = (handle.completion_logprobs(conversations, answers), handle.next_token_probs(judged, list("0123")))
    counts: list[int] = []
    merge = merged.merged_adapters

    @contextmanager
    def counted(model: Any) -> Iterator[int]:
        with merge(model) as count:
            counts.append(count)
            yield count

    monkeypatch.setattr(merged, "merged_adapters", counted)
    got = (handle.completion_logprobs(conversations, answers), handle.next_token_probs(judged, list("0123")))
    assert counts == [len(lora_layers(model))] * 2
    for got_rows, want_rows in zip(got[0], want[0]):
        assert got_rows == pytest.approx(want_rows, abs=1e-5)
    for got_probs, want_probs in zip(got[1], want[1]):
        assert got_probs == pytest.approx(want_probs, abs=1e-6)
    counts.clear()
    handle.completion_logprobs(conversations, answers, reference=True)
    assert counts == [0]


def test_sampling_without_adapters_does_not_import_peft():
    """peft costs seconds to import; a process that never made a LoRA model never pays for it."""
    code = (
        "import sys, torch\n"
        "from dynalign_hf.merged import merged_adapters\n"
        "with merged_adapters(torch.nn.Sequential(torch.nn.Linear(2, 2))) as count:\n"
        "    assert count == 0\n"
        "assert 'peft' not in sys.modules, 'peft was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
