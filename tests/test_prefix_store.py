"""Prefix caches kept across calls (`dynalign_hf.prefix_store`): a reference pass reuses the
shared prefix an earlier call computed, and the result stays the plain computation."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_shared_prefix import PROMPTS, SYSTEM, plain_logprobs, rows


@pytest.fixture
def positions_run(tiny_model_dir: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, list[int]]:
    """(model, tokenizer, the first position of every forward pass the model runs)."""
    from dynalign_hf.backend import load_model

    model, tokenizer = load_model(str(tiny_model_dir))
    starts: list[int] = []
    forward = model.forward

    def recording(*args: Any, **kwargs: Any) -> Any:
        positions = kwargs.get("position_ids")
        starts.append(int(positions.min()) if positions is not None else 0)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", recording)
    return model, tokenizer, starts


def scored(
    model: Any, tokenizer: Any, texts: list[str], answers: list[str], store: Any, starts: list[int]
) -> list[int]:
    """Log-probabilities through the store equal the plain computation; returns the first
    position of each forward pass the stored-prefix call ran."""
    from dynalign_hf.textgen import completion_logprobs, completion_token_ids

    before = len(starts)
    got = completion_logprobs(model, tokenizer, texts, answers, batch_size=4, prefixes=store)
    ran = starts[before:]
    contexts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    want = plain_logprobs(model, contexts, [completion_token_ids(tokenizer, a) for a in answers])
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-4)
    return ran


def test_a_second_call_reuses_the_stored_prefix_and_stays_exact(positions_run):
    from dynalign_hf.prefix_store import PrefixStore

    model, tokenizer, starts = positions_run
    store = PrefixStore()
    texts, answers = rows(tokenizer)
    first = scored(model, tokenizer, texts, answers, store, starts)
    assert len(store) == 1 and store.hits == 0
    assert first.count(0) == 1  # the shared prefix's pass
    # other prompts and answers after the same system prompt: a later GRPO step
    later = [t.replace(p, p.upper()) for t, p in zip(texts, [p for p in PROMPTS for _ in range(3)])]
    second = scored(model, tokenizer, later, list(reversed(answers)), store, starts)
    assert store.hits == 1
    assert len(second) == len(first) - 1 and min(second) > 0  # every pass runs on the stored prefix


def test_a_stored_prefix_shorter_than_what_is_shared_is_extended_per_context(positions_run):
    """The second call's contexts share more than the stored prefix (one prompt only): the
    stored part is reused and the rest is run as each context's own tokens, exactly."""
    from dynalign_hf.prefix_store import PrefixStore

    model, tokenizer, starts = positions_run
    store = PrefixStore()
    texts, answers = rows(tokenizer)
    scored(model, tokenizer, texts, answers, store, starts)
    (stored,) = list(store._caches)
    only_first = texts[:3]  # one prompt: the shared prefix now runs to its last token
    assert len(tokenizer(only_first[0], add_special_tokens=False)["input_ids"]) - 1 > len(stored)
    scored(model, tokenizer, only_first, answers[:3], store, starts)
    assert store.hits == 1 and len(store) == 1


def test_another_prefix_misses_and_is_stored_beside(positions_run):
    from dynalign_hf.prefix_store import PrefixStore

    model, tokenizer, starts = positions_run
    store = PrefixStore()
    scored(model, tokenizer, *rows(tokenizer), store, starts)
    scored(model, tokenizer, *rows(tokenizer, system="Answer briefly and plainly. " * 8), store, starts)
    assert store.hits == 0 and len(store) == 2


def test_the_store_keeps_the_most_recent_within_its_budget():
    from transformers import DynamicCache

    from dynalign_hf.prefix_store import PrefixStore, cache_bytes

    def cache(tokens: int) -> Any:
        made = DynamicCache()
        made.update(torch.zeros(1, 2, tokens, 4), torch.zeros(1, 2, tokens, 4), 0)
        return made

    size = cache_bytes(cache(20))
    assert size == 2 * 2 * 20 * 4 * 4
    store = PrefixStore(budget=2 * size)
    store.put(range(20), cache(20))
    store.put(range(100, 120), cache(20))
    assert store.longest(list(range(25)), 16) is not None  # the first is now the most recent
    store.put(range(200, 220), cache(20))
    assert len(store) == 2 and store.longest(list(range(100, 125)), 16) is None
    store.put(range(300, 400), cache(100))  # larger than the whole budget: not kept
    assert len(store) == 2
    assert store.longest(list(range(10)), 16) is None  # shorter than the minimum: never used


def test_the_policy_handle_keeps_prefixes_for_the_reference_only(tiny_model_dir):
    from dynalign_hf.backend import load_model
    from dynalign_hf.handle import HFPolicyHandle

    model, tokenizer = load_model(str(tiny_model_dir))
    handle = HFPolicyHandle(model, tokenizer)
    conversations = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}] for p in PROMPTS]
    handle.completion_logprobs(conversations, ["a", "b", "c"])
    assert len(handle._reference_prefixes) == 0
    handle.completion_logprobs(conversations, ["a", "b", "c"], reference=True)
    handle.next_token_probs(conversations, list("012345"), "Score: ", reference=True)
    assert len(handle._reference_prefixes) == 1 and handle._reference_prefixes.hits == 1
    handle.release()
    assert len(handle._reference_prefixes) == 0
