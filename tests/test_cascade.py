"""Attention to a shared prefix without a copy per row (`dynalign_hf.cascade`): the same result
as attention over the concatenated keys; refused where it cannot serve. Scoring through it on a
model: tests/test_shared_prefix.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch


class Layer(torch.nn.Module):
    def __init__(self, index: int, groups: int) -> None:
        super().__init__()
        self.layer_idx, self.num_key_value_groups = index, groups


class Prefix:
    """A stand-in for a batch-1 cache of the prefix: one layer of keys and values."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.layers = [type("Entry", (), {"keys": keys, "values": values})()]


def concatenated(query, key, value, prefix_keys, prefix_values, allowed):
    """The reference: the prefix's keys copied in front of every row's, GQA heads repeated."""
    rows, heads = query.shape[:2]
    group = heads // key.shape[1]
    keys = torch.cat([prefix_keys.expand(rows, -1, -1, -1), key], dim=2).repeat_interleave(group, dim=1)
    values = torch.cat([prefix_values.expand(rows, -1, -1, -1), value], dim=2).repeat_interleave(group, dim=1)
    seen = torch.cat([torch.ones(*allowed.shape[:3], prefix_keys.shape[2], dtype=torch.bool), allowed], dim=-1)
    out = torch.nn.functional.scaled_dot_product_attention(query, keys, values, attn_mask=seen)
    return out.transpose(1, 2)


@pytest.mark.parametrize("stage", ["own tokens", "tail on a cache", "no mask, causal", "one query, no mask"])
def test_it_equals_attention_over_the_concatenated_keys(stage):
    from dynalign_hf.cascade import KEYWORD, SharedPrefix, shared_prefix_attention

    torch.manual_seed(0)
    rows, heads, key_heads, size, width = 3, 6, 2, 8, 7
    length, own = {"own tokens": (5, 5), "tail on a cache": (3, 6), "no mask, causal": (4, 4)}.get(stage, (1, 6))
    query = torch.randn(rows, length, heads, size).transpose(1, 2)  # as the model lays it out
    key, value = torch.randn(rows, key_heads, own, size), torch.randn(rows, key_heads, own, size)
    prefix_keys, prefix_values = torch.randn(1, key_heads, width, size), torch.randn(1, key_heads, width, size)
    causal = torch.ones(length, own, dtype=torch.bool).tril(own - length)
    allowed = causal[None, None].repeat(rows, 1, 1, 1)
    mask: Any = None
    if stage in ("own tokens", "tail on a cache"):
        allowed[1, :, :, own - 2 :] = False  # a shorter row: its padding is no key
        allowed[2, :, :, :] = False  # a row of padding only: it sees the prefix alone
        mask = allowed
    shared = SharedPrefix(Prefix(prefix_keys, prefix_values))
    got, _ = shared_prefix_attention(Layer(0, heads // key_heads), query, key, value, mask, **{KEYWORD: shared})
    want = concatenated(query, key, value, prefix_keys, prefix_values, allowed)
    assert shared.uses == 1
    assert got.shape == want.shape == (rows, length, heads, size)
    assert torch.allclose(got, want, atol=1e-5)


def test_without_a_prefix_it_is_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from dynalign_hf.cascade import shared_prefix_attention

    torch.manual_seed(1)
    query, key, value = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 3, 8), torch.randn(2, 2, 3, 8)
    got, _ = shared_prefix_attention(Layer(0, 2), query, key, value, None)
    want, _ = sdpa_attention_forward(Layer(0, 2), query, key, value, None)
    assert torch.equal(got, want)


def test_what_it_cannot_honour_is_refused():
    from dynalign_hf.cascade import KEYWORD, SharedPrefix, shared_prefix_attention

    shared = SharedPrefix(Prefix(torch.zeros(1, 1, 2, 4), torch.zeros(1, 1, 2, 4)))
    tensors = [torch.zeros(1, 1, 1, 4)] * 3
    with pytest.raises(ValueError, match="sliding_window"):
        shared_prefix_attention(Layer(0, 1), *tensors, None, sliding_window=4, **{KEYWORD: shared})


def test_the_attention_implementation_is_put_back_when_a_pass_fails(tiny_model_dir):
    from dynalign_hf.backend import load_model
    from dynalign_hf.cascade import attending_to

    model, _ = load_model(str(tiny_model_dir))
    with pytest.raises(KeyError), attending_to(model):
        assert model.config._attn_implementation != "sdpa"
        raise KeyError("boom")
    assert model.config._attn_implementation == "sdpa"


def test_overlapping_entries_put_it_back_at_the_last_exit(tiny_model_dir):
    from dynalign_hf.backend import load_model
    from dynalign_hf.cascade import NAME, attending_to

    model, _ = load_model(str(tiny_model_dir))
    first, second = attending_to(model), attending_to(model)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # another thread's pass is still running
    assert model.config._attn_implementation == NAME
    second.__exit__(None, None, None)
    assert model.config._attn_implementation == "sdpa"


def test_accelerators_keep_the_copying_path():
    from dynalign_hf.cascade import supports

    class Model:
        _supports_attention_backend = True

        def __init__(self, device: str) -> None:
            self.device = torch.device(device)
            self.config = type("Config", (), {"_attn_implementation": "sdpa", "sliding_window": None})()

    assert supports(Model("cpu"))
    assert not supports(Model("cuda"))
