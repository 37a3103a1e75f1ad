"""Decoding's few-row products (dynalign_hf.skinny): every way gives torch's numbers, `auto`
takes the way its measurement chose, measures once per machine and leaves the sampling's random
stream alone, and `linear` is itself again after the block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dynalign_hf import skinny
from dynalign_hf.skinny import MAX_ROWS, choose, packed_linear, skinny_products, weight_first

needs_onednn = pytest.mark.skipif(not skinny.can_pack(), reason="this torch has no oneDNN")


class Tiny(torch.nn.Module):
    """Two layers of the tuned size and an output layer, as a decoder's products see them."""

    def __init__(self) -> None:
        super().__init__()
        self.up = torch.nn.Linear(128, 512, bias=False)
        self.down = torch.nn.Linear(512, 128, bias=False)
        self.adapter = torch.nn.Linear(128, 8, bias=False)  # LoRA-sized: below MIN_TUNED_ELEMENTS
        self.head = torch.nn.Linear(128, 1024, bias=False)

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.down(self.up(x)) + self.adapter(x).sum(-1, keepdim=True))


@pytest.mark.parametrize("way", [weight_first, pytest.param(packed_linear, marks=needs_onednn)])
@pytest.mark.parametrize("shape", [(1, 64), (8, 1, 64), (4, 2, 64), (MAX_ROWS, 64)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_every_way_equals_torchs_linear(way: Any, shape: tuple[int, ...], with_bias: bool) -> None:
    torch.manual_seed(0)
    x, weight = torch.randn(*shape), torch.randn(96, 64)
    bias = torch.randn(96) if with_bias else None
    with torch.no_grad():
        got = way(x, weight, bias)
    expected = F.linear(x, weight, bias)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


@needs_onednn
def test_the_output_layer_is_packed_once_per_block_so_training_between_blocks_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packed: list[tuple[int, ...]] = []
    original = skinny.pack
    monkeypatch.setattr(skinny, "pack", lambda w: packed.append(tuple(w.shape)) or original(w))
    model, x = Tiny(), torch.randn(8, 128)
    with torch.no_grad():
        with skinny_products(model, "packed"):
            model(x)
            model(x)  # the next decoding step reuses the block's copy
        assert packed == [(1024, 128)]
        model.head.weight.mul_(2)  # as an optimizer step between two generate calls
        with skinny_products(model, "packed"):
            got = model(x)
    assert packed == [(1024, 128)] * 2
    torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-5)


def test_choose_takes_the_fastest_unless_torch_is_within_the_margin() -> None:
    assert choose({"torch": [1.0, 1.0, 9.0], "weight-first": [0.5, 0.6, 0.4]}) == "weight-first"
    assert choose({"torch": [1.0], "weight-first": [0.97], "packed": [0.99]}) == "torch"  # a tie: no switch
    assert choose({"torch": [1.0], "weight-first": [0.9], "packed": [0.3]}) == "packed"


@pytest.fixture
def routes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[int, ...]]]:
    """(way, weight shape) of every product that takes weight first or the packed weight."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    for name in ("weight_first", "packed_linear"):
        original = getattr(skinny, name)

        def spy(x: torch.Tensor, w: torch.Tensor, *rest: Any, _name: str = name, _f: Any = original) -> Any:
            seen.append((_name, tuple(w.shape)))
            return _f(x, w, *rest)

        monkeypatch.setattr(skinny, name, spy)
    return seen


def test_auto_routes_each_product_as_measured_and_measures_once_per_machine(
    routes: list[tuple[str, tuple[int, ...]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DYNALIGN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("DYNALIGN_NO_CACHE")
    monkeypatch.setattr(skinny, "_choices", {})
    timed: list[tuple[tuple[int, int], int]] = []
    decided = {(512, 128): "weight-first", (128, 512): "torch", (1024, 128): "packed"}

    def fake_time(self: Any, shape: tuple[int, int], rows: int) -> str:
        timed.append((shape, rows))
        return decided[shape]

    monkeypatch.setattr(skinny._Router, "_time", fake_time)
    model, x = Tiny(), torch.randn(8, 1, 128)
    expected = model(x)
    with torch.no_grad(), skinny_products(model):
        got = model(x)
        F.linear(torch.randn(8, 128), torch.randn(1024, 128))  # the output layer's shape, another weight
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
    assert sorted(timed) == [((128, 512), 8), ((512, 128), 8), ((1024, 128), 8)]  # the adapter is not timed
    packed = [("packed_linear", (1024, 128))] if skinny.can_pack() else []
    assert routes == [("weight_first", (512, 128)), *packed]

    monkeypatch.setattr(skinny, "_choices", {})  # a new process: the choice comes from the disk cache
    with torch.no_grad(), skinny_products(model):
        model(x)
        assert len(timed) == 3
        model(torch.randn(4, 1, 128))  # another rows count is measured for itself
    assert len(timed) == 6 and {rows for _, rows in timed[3:]} == {4}


def test_measuring_leaves_the_random_stream_and_products_of_other_sizes_alone(
    routes: list[tuple[str, tuple[int, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(skinny, "_choices", {})
    model = Tiny()
    torch.manual_seed(0)
    with torch.no_grad(), skinny_products(model):
        model(torch.randn(8, 128))  # measures (really) for 8 rows
        after = torch.rand(3)
        routes.clear()
        model(torch.randn(MAX_ROWS + 1, 128))  # a prefill or scoring pass
    model(torch.randn(8, 128).requires_grad_())  # training: autograd's own kernels
    torch.manual_seed(0)
    torch.randn(8, 128)
    assert torch.equal(after, torch.rand(3))
    assert len(skinny._choices) == 1
    assert routes == []  # neither went another way than torch's


def test_fixed_ways(routes: list[tuple[str, tuple[int, ...]]]) -> None:
    model, x = Tiny(), torch.randn(8, 128)
    with torch.no_grad(), skinny_products(model, "torch"):
        model(x)
    assert routes == []
    with torch.no_grad(), skinny_products(model, "weight-first"):
        model(x)
    assert {shape for _, shape in routes} == {(512, 128), (128, 512), (8, 128), (1024, 128)}
    routes.clear()
    if skinny.can_pack():
        with torch.no_grad(), skinny_products(model, "packed"):
            model(x)
        assert routes == [("packed_linear", (1024, 128))]  # the output layer only


def test_packed_without_onednn_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dynalign.api import ModelError

    monkeypatch.setattr(skinny, "can_pack", lambda: False)
    original = F.linear
    with pytest.raises(ModelError, match="use 'auto' or 'torch'"), skinny_products(Tiny(), "packed"):
        pass
    assert F.linear is original


def test_linear_is_restored_after_the_block_nested_or_failed() -> None:
    original = F.linear
    with skinny_products(Tiny(), "weight-first"):
        patched = F.linear
        assert patched is not original
        with skinny_products():
            assert F.linear is patched  # nested: one block
        assert F.linear is patched
    assert F.linear is original
    with pytest.raises(RuntimeError), skinny_products(products="weight-first"):
        raise RuntimeError("boom")
    assert F.linear is original
