"""Decoding's few-row products taken weight first (dynalign_hf.skinny): the same numbers as
torch's `linear`, only where they were measured faster, and nothing changed after the block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dynalign_hf.skinny import MAX_ROWS, skinny_products


@pytest.fixture
def mm_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of the input of every `torch.mm` call (the weight-first path makes one)."""
    calls: list[tuple[int, ...]] = []
    original = torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b: calls.append(tuple(b.shape)) or original(a, b))
    return calls


@pytest.mark.parametrize("shape", [(1, 64), (2, 64), (8, 1, 64), (4, 2, 64), (MAX_ROWS, 64), (MAX_ROWS + 1, 64)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_products_equal_torchs_linear(shape: tuple[int, ...], with_bias: bool) -> None:
    torch.manual_seed(0)
    x, weight = torch.randn(*shape), torch.randn(96, 64)
    bias = torch.randn(96) if with_bias else None
    expected = F.linear(x, weight, bias)
    with torch.no_grad(), skinny_products():
        got = F.linear(x, weight, bias)
        through_module = torch.nn.Linear(64, 96, bias=with_bias)
        through_module.weight.copy_(weight)
        if with_bias:
            through_module.bias.copy_(bias)
        module_out = through_module(x)
    assert got.shape == expected.shape == module_out.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(module_out, expected, atol=1e-5, rtol=1e-5)


def test_only_no_grad_fp32_decode_sized_products_are_reordered(mm_calls: list[tuple[int, ...]]) -> None:
    weight = torch.randn(32, 16)
    with skinny_products():
        with torch.no_grad():
            F.linear(torch.randn(8, 16), weight)  # a decoding step's rows: weight first
            assert mm_calls == [(16, 8)]
            F.linear(torch.randn(1, 16), weight)  # one row: no gain measured
            F.linear(torch.randn(MAX_ROWS + 1, 16), weight)  # a prefill or scoring pass
            F.linear(torch.randn(8, 16, dtype=torch.float64), weight.double())
        F.linear(torch.randn(8, 16), weight.requires_grad_())  # training: autograd's own kernels
    assert mm_calls == [(16, 8)]


def test_linear_is_restored_after_the_block_nested_or_failed() -> None:
    original = F.linear
    with skinny_products():
        patched = F.linear
        assert patched is not original
        with skinny_products():
            assert F.linear is patched  # nested: one block
        assert F.linear is patched
    assert F.linear is original
    with pytest.raises(RuntimeError), skinny_products():
        raise RuntimeError("boom")
    assert F.linear is original
