"""Matrix products for the few rows of a decoding step, on a CPU, in the way this machine runs fastest.

Each decoding step multiplies one row per sequence (1-64 in a sampling batch) by every weight
matrix of the model. Three exact ways compute `linear(x, W)` = x @ W.T; which is fastest
depends on the CPU, so it is measured, not assumed (BENCHMARKS.md, issue 20 rounds 4 and 6):

- `torch`: torch's own `linear`;
- `weight-first`: the same product taken as (W @ x.T).T (1.1-2x faster for 8-64 rows on the
  2-core AMD EPYC of round 4, 1.3-1.6x *slower* for the layer weights on an Intel Xeon);
- `packed`: the output layer's weight reordered once per generate call into oneDNN's blocked
  layout (the 49k x 576 product of 8 rows: 14 -> 5.5 ms on that Xeon). Only the output layer
  is packed, so the copy costs one matrix's memory (113 MB for SmolLM2), not the model's.

With `auto` each (weight shape, rows) gets the fastest of these, timed on the model's own
weights of that shape (cycled, so they come from memory as in a forward pass), once per
machine, thread count and versions: the choice is remembered in `DYNALIGN_CACHE_DIR`
(`dynalign.measured`), so every later run on the machine makes the same choice and samples the
same tokens. The ways differ only by float rounding (about 1e-6 relative), so sampling keeps
its distribution.
"""

from __future__ import annotations

import functools
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F

Products = Literal["auto", "torch", "weight-first", "packed"]
MAX_ROWS = 64  # beyond it a pass is a prefill or scoring batch, which torch's order serves
MIN_TUNED_ELEMENTS = 1 << 16  # smaller weights (LoRA's adapters) keep torch's order: too quick to gain
ROUNDS = 5  # timed passes per way and shape
MARGIN = 0.95  # another way must beat torch's by 5% to be chosen: no flapping on a tie
Linear = Callable[..., torch.Tensor]


def weight_first(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`linear(input, weight, bias)` (input @ weight.T + bias) taken as (weight @ input.T).T,
    contiguous and in `input`'s leading shape, as `linear` returns it."""
    width = input.shape[-1]
    out = torch.mm(weight, input.reshape(-1, width).t()).t().contiguous()  # callers .view() it
    if bias is not None:
        out += bias
    return out.reshape(*input.shape[:-1], weight.shape[0])


_choices: dict[str, dict[str, str]] = {}  # measured ways by machine, rows and shapes


def can_pack() -> bool:
    """Whether this torch has oneDNN's linear with a prepacked weight."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def pack(weight: torch.Tensor) -> torch.Tensor:
    """`weight` in oneDNN's blocked layout (30-100 ms for SmolLM2's output layer)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 8)  # 8: a hint; any rows work


def packed_linear(
    input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, packed: torch.Tensor | None = None
) -> torch.Tensor:
    """`linear(input, weight, bias)` through oneDNN, with `packed` = `pack(weight)` (made here
    when not given)."""
    packed = pack(weight) if packed is None else packed
    width = input.shape[-1]
    out = torch.ops.mkldnn._linear_pointwise(input.reshape(-1, width), packed, bias, "none", [], "")
    return out.reshape(*input.shape[:-1], weight.shape[0])


def _rows(input: torch.Tensor) -> int:
    width = input.shape[-1] if input.dim() else 0
    return input.numel() // width if width else 0


def _decode_sized(input: torch.Tensor, weight: torch.Tensor) -> bool:
    """A no-grad fp32 CPU product of 1..MAX_ROWS rows by a 2-D weight: what may be rerouted."""
    return (
        not torch.is_grad_enabled()
        and 1 <= _rows(input) <= MAX_ROWS
        and weight.dim() == 2
        and input.device.type == "cpu"
        and input.dtype == torch.float32
        and weight.dtype == torch.float32
    )


def choose(seconds: dict[str, list[float]]) -> str:
    """The way with the lowest median time; `torch` unless another beats it by the margin."""
    medians = {way: statistics.median(times) for way, times in seconds.items()}
    best = min(medians, key=lambda way: medians[way])
    return best if "torch" not in medians or medians[best] < MARGIN * medians["torch"] else "torch"


@functools.cache
def _cpu_name() -> str:
    """The CPU's model name (read once per process)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            found = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), None)
    except OSError:
        found = None
    return found or platform.processor()


def machine() -> dict[str, Any]:
    """What a measured choice holds for: the CPU, its kernels' instruction set and threads."""
    return {
        "cpu": _cpu_name(),
        "arch": platform.machine(),
        "isa": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


class _Router:
    """The way each decode-sized product takes: one for all, or (`auto`) per weight shape and
    rows count, measured on the model's own weights on first use."""

    def __init__(self, model: Any, original: Linear, products: Products) -> None:
        self.original, self.products = original, products
        output_layer = getattr(model, "get_output_embeddings", lambda: None)()
        self.output = getattr(output_layer, "weight", None)
        self.weights: dict[tuple[int, int], list[torch.Tensor]] = {}
        for module in model.modules() if model is not None and products == "auto" else ():
            weight = getattr(module, "weight", None)
            if isinstance(module, torch.nn.Linear) and weight is not None and weight.numel() >= MIN_TUNED_ELEMENTS:
                if weight.device.type == "cpu" and weight.dtype == torch.float32:
                    self.weights.setdefault(tuple(weight.shape), []).append(weight)
        self.ways: dict[int, dict[str, str]] = {}
        # the output layer packed for this block only (a generate call): packing costs 30-100 ms
        # against seconds saved, a weight trained between calls is packed afresh, and the eval's
        # base and aligned models never hold a packed copy each
        self.packed_output: torch.Tensor | None = None

    def way(self, weight: torch.Tensor, rows: int) -> str:
        """`torch`, `weight-first` or `packed` for this product."""
        if self.products != "auto":
            way = self.products
        elif tuple(weight.shape) not in self.weights:
            return "torch"
        else:
            if rows not in self.ways:
                self.ways[rows] = self._measured(rows)
            way = self.ways[rows].get("x".join(map(str, weight.shape)), "torch")
        return way if way != "packed" or weight is self.output else "torch"

    def packed(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The output layer's product through its packed copy, made on first use in the block."""
        if self.packed_output is None:
            self.packed_output = pack(weight)
        return packed_linear(input, weight, bias, self.packed_output)

    def _measured(self, rows: int) -> dict[str, str]:
        from dynalign.api import measure_once

        shapes = sorted(self.weights)
        output = list(self.output.shape) if self.output is not None else None
        key = {"machine": machine(), "rows": rows, "shapes": shapes, "output": output, "packs": can_pack()}
        remembered = json.dumps(key)  # once per process, with the disk cache off too
        if remembered not in _choices:
            _choices[remembered] = measure_once(
                "decode-products", key, lambda: {"x".join(map(str, s)): self._time(s, rows) for s in shapes}
            )
        return _choices[remembered]

    def _time(self, shape: tuple[int, int], rows: int) -> str:
        """The fastest way for `rows` rows by the model's weights of `shape`, timed in rounds."""
        weights = self.weights[shape]
        ways: dict[str, Linear] = {"torch": self.original, "weight-first": weight_first}
        if can_pack() and any(w is self.output for w in weights):
            weights, ways["packed"] = [w for w in weights if w is self.output], self.packed
        # a private generator: measuring must not move the sampling's random stream
        x = torch.randn(rows, shape[1], generator=torch.Generator().manual_seed(0))
        seconds: dict[str, list[float]] = {way: [] for way in ways}
        for linear in ways.values():
            linear(x, weights[0])  # warm-up; packs the output layer once
        for _ in range(ROUNDS):
            for way, linear in ways.items():
                started = time.perf_counter()
                for weight in weights:
                    linear(x, weight)
                seconds[way].append(time.perf_counter() - started)
        return choose(seconds)


def _dispatching(original: Linear, router: _Router) -> Linear:
    """`linear` that sends decode-sized products the routed way, everything else to `original`."""
    ways: dict[str, Linear] = {"torch": original, "weight-first": weight_first, "packed": router.packed}

    def linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if not _decode_sized(input, weight):
            return original(input, weight, bias)
        return ways[router.way(weight, _rows(input))](input, weight, bias)

    linear.decode_products = True  # type: ignore[attr-defined]
    return linear


@contextmanager
def skinny_products(model: Any = None, products: Products = "auto") -> Iterator[None]:
    """Within the block, `torch.nn.functional.linear` (which every `nn.Linear`, LoRA's
    included, calls) takes decode-sized no-grad products the `products` way: `auto` (measured
    on `model`'s weights; without a model, torch's), `weight-first` for all, or `packed` for
    `model`'s output layer (torch's for the rest). Anything else, and everything after the
    block, goes to the original. Nested blocks are one block."""
    original = F.linear
    if getattr(original, "decode_products", False) or products == "torch":
        yield
        return
    if products == "packed" and not can_pack():
        from dynalign.api import ModelError

        raise ModelError("decode_products = 'packed' needs torch with oneDNN (mkldnn); use 'auto' or 'torch'")
    F.linear = _dispatching(original, _Router(model, original, products))
    try:
        yield
    finally:
        F.linear = original
