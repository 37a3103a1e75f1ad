"""The in-place growing key/value cache (`dynalign_hf.growcache`) samples exactly what
transformers' own cache does: same tokens for the same seed, same logits."""

from __future__ import annotations

from typing import Any

import pytest
import torch

SYSTEM = "You value knowledge, power, vitality and benevolence for everyone. " * 4
PROMPTS = ["How do I start a garden?", "Explain tides to a child in two sentences.", "Plan a town meeting."]


def _batch(tokenizer: Any, model: Any, prompts: list[str], n: int) -> tuple[Any, Any]:
    from dynalign_hf.textgen import _left_padded, render

    texts = [
        render(tokenizer, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}]) for p in prompts
    ]
    batch = _left_padded(tokenizer, texts, model.device)
    return batch["input_ids"].repeat_interleave(n, 0), batch["attention_mask"].repeat_interleave(n, 0)


@pytest.mark.parametrize("prompts,n", [(PROMPTS[:2], 4), (PROMPTS, 1)])
def test_sampled_tokens_equal_plain_generate_for_the_same_seed(tiny_model_dir, prompts, n):
    """Temperature and top-p sampling, 24 new tokens: `generate_shared` (shared prefill, growing
    cache) draws exactly the tokens plain `generate` draws, and gives the same scores."""
    from dynalign_hf.backend import load_model
    from dynalign_hf.prefix import generate_shared

    model, tokenizer = load_model(str(tiny_model_dir))
    ids, mask = _batch(tokenizer, model, prompts, n)
    settings = {
        "max_new_tokens": 24,
        "do_sample": True,
        "temperature": 0.9,
        "top_p": 0.95,
        "top_k": None,
        "pad_token_id": tokenizer.pad_token_id,
        "return_dict_in_generate": True,
        "output_logits": True,
    }
    torch.manual_seed(7)
    plain = model.generate(input_ids=ids, attention_mask=mask, **settings)
    torch.manual_seed(7)
    grown = generate_shared(model, ids, mask, **settings)
    assert torch.equal(grown.sequences, plain.sequences)
    for mine, theirs in zip(grown.logits, plain.logits):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-4)


def test_growing_layer_holds_the_concatenation_and_survives_batch_selection():
    """Updates equal `torch.cat`'s result, across a full buffer and after the cache's rows are
    selected (which replaces the tensors behind the buffer's back)."""
    from transformers.cache_utils import DynamicLayer

    from dynalign_hf.growcache import GrowingLayer

    plain, grown = DynamicLayer(), GrowingLayer(reserve=2)
    for step, width in enumerate([5, 1, 1, 1, 3, 1]):
        keys, values = torch.randn(3, 2, width, 4), torch.randn(3, 2, width, 4)
        expected = plain.update(keys, values)
        got = grown.update(keys, values)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert grown.get_seq_length() == plain.get_seq_length()
        if step == 3:
            index = torch.tensor([2, 0, 0])
            plain.batch_select_indices(index)
            grown.batch_select_indices(index)


def test_grow_in_place_leaves_other_layer_kinds_alone():
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    from dynalign_hf.growcache import GrowingLayer, grow_in_place

    cache = DynamicCache()
    cache.layers = [DynamicLayer(), DynamicSlidingWindowLayer(sliding_window=4)]
    grow_in_place(cache, 8)
    assert isinstance(cache.layers[0], GrowingLayer)
    assert type(cache.layers[1]) is DynamicSlidingWindowLayer
