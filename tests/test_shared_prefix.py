"""Shared-prefix scoring (`dynalign_hf.prefix`) equals the plain computation, row by row."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch

SYSTEM = "You value knowledge, power, vitality and benevolence for everyone. " * 6
PROMPTS = ["How do I start a garden?", "Explain tides to a child in two sentences.", "Plan a town meeting."]
ANSWERS = [
    "Pick a sunny spot.",
    "Water it often and learn from your neighbours what grows well.",
    "The moon pulls the sea.",
    "",
    "Invite everyone, listen first, decide together and write it down.",
]


def plain_logprobs(model: Any, contexts: list[list[int]], answers: list[list[int]]) -> list[list[float]]:
    """The reference: each row alone, the whole sequence, no cache and no padding."""
    out = []
    with torch.no_grad():
        for context, answer in zip(contexts, answers):
            ids = torch.tensor([context + answer])
            logps = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
            out.append([float(logps[len(context) - 1 + t, token]) for t, token in enumerate(answer)])
    return out


def rows(tokenizer: Any, system: str | None = SYSTEM) -> tuple[list[str], list[str]]:
    """Rendered contexts (groups of candidates per prompt, like a GRPO step) and answers."""
    from dynalign_hf.textgen import render

    texts, answers = [], []
    for i, prompt in enumerate(PROMPTS):
        conversation = [{"role": "user", "content": prompt}]
        if system is not None:
            conversation.insert(0, {"role": "system", "content": system})
        for answer in ANSWERS[i : i + 3]:
            texts.append(render(tokenizer, conversation))
            answers.append(answer)
    return texts, answers


def assert_exact(model: Any, tokenizer: Any, texts: list[str], answers: list[str], batch_size: int) -> None:
    from dynalign_hf.textgen import completion_logprobs, completion_token_ids

    shared = completion_logprobs(model, tokenizer, texts, answers, batch_size=batch_size)
    contexts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    plain = plain_logprobs(model, contexts, [completion_token_ids(tokenizer, a) for a in answers])
    assert [len(r) for r in shared] == [len(r) for r in plain]
    for got, want in zip(shared, plain):
        assert got == pytest.approx(want, abs=1e-4)


def assert_probs_exact(model: Any, tokenizer: Any, texts: list[str], shared: list[dict], tolerance: float) -> None:
    """Each text's next-token probabilities of the digits equal those of the text run alone."""
    ids = [tokenizer.encode(c, add_special_tokens=False)[0] for c in "012345"]
    with torch.no_grad():
        for text, got in zip(texts, shared):
            logits = model(input_ids=torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])).logits
            want = torch.softmax(logits[0, -1].float(), dim=-1)[ids].tolist()
            assert [got[c] for c in "012345"] == pytest.approx(want, abs=tolerance)


@pytest.mark.parametrize("batch_size", [1, 2, 8])
@pytest.mark.parametrize("system", [SYSTEM, None, ""])
def test_completion_logprobs_equal_the_plain_computation(tiny_model_dir, batch_size, system):
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    assert_exact(model, tokenizer, *rows(tokenizer, system), batch_size=batch_size)


def test_a_small_position_budget_splits_batches_and_stays_exact(tiny_model_dir, monkeypatch):
    from dynalign_hf import prefix
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    monkeypatch.setattr(prefix, "TAIL_POSITIONS", 24)
    assert [len(b) for b in prefix.budgeted(list("abcde"), [10, 11, 30, 2, 3], 8)] == [2, 1, 2]
    assert_exact(model, tokenizer, *rows(tokenizer), batch_size=8)


def test_nothing_to_score_is_no_pass(tiny_model_dir):
    from dynalign_hf.backend import load_model
    from dynalign_hf.textgen import completion_logprobs, next_token_probs

    model, tokenizer = load_model(str(tiny_model_dir))
    assert completion_logprobs(model, tokenizer, [], []) == []
    assert next_token_probs(model, tokenizer, [], list("012345")) == []


def test_next_token_probs_equal_the_plain_computation(tiny_model_dir, monkeypatch):
    from dynalign_hf.backend import load_model
    from dynalign_hf.textgen import next_token_probs

    model, tokenizer = load_model(str(tiny_model_dir))
    texts, answers = rows(tokenizer)
    judged = [t + a + " Score: " for t, a in zip(texts, answers)]
    passes: list[int] = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a, **k: passes.append(1) or forward(*a, **k))
    shared = next_token_probs(model, tokenizer, judged, list("012345"), batch_size=3)
    monkeypatch.undo()
    assert len(passes) == 1 + len(judged) // 3  # the shared prefix, then one pass per batch (no tail pass)
    assert_probs_exact(model, tokenizer, judged, shared, 1e-5)


def test_shared_prefixes_are_computed_once(tiny_model_dir, monkeypatch):
    """Counts the token positions the model runs: the system prompt once, each prompt once."""
    from dynalign_hf.backend import load_model
    from dynalign_hf.textgen import completion_logprobs

    model, tokenizer = load_model(str(tiny_model_dir))
    texts, answers = rows(tokenizer)
    ran: list[int] = []
    forward = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        ran.append(
            int(kwargs["attention_mask"][:, -kwargs["input_ids"].shape[1] :].sum())
            if "attention_mask" in kwargs
            else kwargs["input_ids"].numel()
        )
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    completion_logprobs(model, tokenizer, texts, answers, batch_size=8)
    contexts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    answer_tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    distinct = {tuple(c) for c in contexts}
    system_tokens = len(tokenizer(SYSTEM, add_special_tokens=False)["input_ids"])
    unshared = sum(len(c) for c in contexts) + answer_tokens
    assert sum(ran) <= unshared - (len(texts) - 1) * system_tokens
    assert sum(ran) <= sum(len(c) for c in distinct) + answer_tokens + len(texts)


def test_scoring_attends_to_the_prefix_apart_and_stays_exact(tiny_model_dir, monkeypatch):
    from dynalign_hf import cascade
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    passes: list[tuple[int, int]] = []  # (layers that attended to the prefix apart, layers)
    check = cascade.check_attended

    def counting(model: Any, shared: Any, layers: int) -> None:
        passes.append((shared.uses, layers))
        check(model, shared, layers)

    monkeypatch.setattr(cascade, "check_attended", counting)
    assert_exact(model, tokenizer, *rows(tokenizer), batch_size=4)
    assert passes and all(uses == layers == 2 for uses, layers in passes)  # stages B and C, every layer
    assert model.config._attn_implementation == "sdpa"  # put back after the call


def test_a_model_whose_layers_ignore_the_prefix_gets_it_copied(tiny_model_dir, monkeypatch):
    from dynalign_hf import cascade
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    monkeypatch.setattr(cascade, "_IGNORING", set())
    entered: list[bool] = []

    def plain(model: Any) -> Any:  # the model keeps sdpa, which drops the prefix it is handed
        entered.append(True)
        return contextlib.nullcontext()

    monkeypatch.setattr(cascade, "attending_to", plain)
    assert_exact(model, tokenizer, *rows(tokenizer), batch_size=4)  # not a number without the prefix
    assert entered == [True]  # found out at the first pass, then the copying path
    assert not cascade.supports(model)
    with pytest.raises(cascade.PrefixIgnored, match="ran in 0 of 2 layers"):
        cascade.check_attended(model, cascade.SharedPrefix(None), 2)


def test_models_it_cannot_serve_keep_the_copying_path(tiny_model_dir, monkeypatch):
    from dynalign_hf import cascade
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))  # shared in the process: changes are undone
    assert cascade.supports(model)
    monkeypatch.setattr(model.config, "sliding_window", 4, raising=False)
    assert not cascade.supports(model)
    monkeypatch.setattr(model.config, "sliding_window", None)
    monkeypatch.setattr(model.config, "_attn_implementation", "flex_attention")
    assert not cascade.supports(model)
    monkeypatch.setattr(model.config, "_attn_implementation", "eager")  # eager attends through the function too
    assert cascade.supports(model)
    monkeypatch.setattr(model.config, "_attn_implementation", "sdpa")

    monkeypatch.setattr(cascade, "supports", lambda model: False)
    monkeypatch.setattr(cascade, "attending_to", None)  # never entered on the copying path
    assert_exact(model, tokenizer, *rows(tokenizer), batch_size=4)


@pytest.mark.model
def test_shared_prefix_is_exact_on_smollm2():
    from dynalign.api import SCORE_PREFIX, pointwise_messages
    from dynalign_hf.backend import load_model, resolve_model_path
    from dynalign_hf.prefix import split_at_siblings
    from dynalign_hf.textgen import next_token_probs, render
    from dynalign_value_ca import collective_agency

    model, tokenizer = load_model(resolve_model_path("embedded:smollm2-135m-instruct"))
    value = collective_agency()
    pairs = list(value.calibration)[:4]

    texts, answers = [], []
    for pair in pairs:
        conversation = [
            {"role": "system", "content": value.system_prompt.strip()},
            {"role": "user", "content": pair.prompt},
        ]
        for answer in (pair.better, pair.worse):
            texts.append(render(tokenizer, conversation))
            answers.append(answer)
    assert_exact(model, tokenizer, texts, answers, batch_size=4)

    # the judge's rubric (882 tokens) is the prefix every judged answer shares, and each pair's
    # two answers share their request after it
    judged = [
        render(tokenizer, pointwise_messages(value, p.prompt, answer), SCORE_PREFIX)
        for p in pairs[:2]
        for answer in (p.better, p.worse)
    ]
    assert all(split_at_siblings([tokenizer(t, add_special_tokens=False)["input_ids"] for t in judged])[1])
    shared = next_token_probs(model, tokenizer, judged, list("012345"), batch_size=2)
    assert_probs_exact(model, tokenizer, judged, shared, 1e-4)


def test_generation_prefills_each_distinct_prompt_once(tiny_model_dir, monkeypatch):
    """Greedy answers equal the plain `generate`; the system prompt both prompts start with runs
    once, then each prompt's own tokens once (not 4 times)."""
    from dynalign_hf.backend import load_model
    from dynalign_hf.prefix import MIN_SHARED_PREFIX, common_prefix_length
    from dynalign_hf.sampling import generate_shared
    from dynalign_hf.textgen import _left_padded, render

    model, tokenizer = load_model(str(tiny_model_dir))
    texts = [
        render(tokenizer, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]) for p in PROMPTS[:2]
    ]
    batch = _left_padded(tokenizer, texts, model.device)
    ids, mask = batch["input_ids"].repeat_interleave(4, 0), batch["attention_mask"].repeat_interleave(4, 0)
    assert (mask == 0).any()  # the prompts differ in length: left padding
    prompts = [row[keep.bool()].tolist() for row, keep in zip(batch["input_ids"], batch["attention_mask"])]
    shared_length = common_prefix_length(prompts)
    assert shared_length >= MIN_SHARED_PREFIX
    settings = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    plain = model.generate(input_ids=ids, attention_mask=mask, **settings)
    ran: list[int] = []
    forward = model.forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        ran.append(kwargs["input_ids"].numel())
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    shared = generate_shared(model, ids, mask, **settings)
    assert torch.equal(shared, plain)
    assert ran[0] == shared_length  # the system prompt, once
    assert ran[1] == 2 * max(len(p) - 1 - shared_length for p in prompts)  # each prompt's own tokens, once
    assert sum(ran) < ids.numel()  # the plain call prefills all 8 rows
