"""Matrix products for the few rows of a decoding step, on a CPU.

Each decoding step multiplies one row per sequence (8-32 in a GRPO batch) by every weight
matrix of the model. `torch.nn.functional.linear` computes that as x @ W.T; on the 2-core AVX2
CPU measured here the same product taken the other way round, (W @ x.T).T, ran 1.1-2x faster
for 8-64 rows (the 49152-wide output layer: 34 -> 17 ms for 8 rows; BENCHMARKS.md, round 4),
and no faster for one row or for 128 and more (a prefill or scoring pass). The two orders
differ only by float rounding (about 1e-6), so sampling keeps its distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

MIN_ROWS, MAX_ROWS = 2, 64  # where the reordered product measured faster (at 128 it was slower)


def weight_first(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`linear(input, weight, bias)` (input @ weight.T + bias) taken as (weight @ input.T).T,
    contiguous and in `input`'s leading shape, as `linear` returns it."""
    width = input.shape[-1]
    out = torch.mm(weight, input.reshape(-1, width).t()).t().contiguous()  # callers .view() it
    if bias is not None:
        out += bias
    return out.reshape(*input.shape[:-1], weight.shape[0])


def _weight_first(original: Callable[..., Any]) -> Callable[..., Any]:
    """`linear` that takes no-grad fp32 CPU products of MIN_ROWS..MAX_ROWS rows weight first."""

    def linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        width = input.shape[-1] if input.dim() else 0
        rows = input.numel() // width if width else 0
        if (
            torch.is_grad_enabled()
            or not MIN_ROWS <= rows <= MAX_ROWS
            or weight.dim() != 2
            or input.device.type != "cpu"
            or input.dtype != torch.float32
            or weight.dtype != torch.float32
        ):
            return original(input, weight, bias)
        return weight_first(input, weight, bias)

    linear.weight_first = True  # type: ignore[attr-defined]
    return linear


@contextmanager
def skinny_products() -> Iterator[None]:
    """Within the block, `torch.nn.functional.linear` (which every `nn.Linear`, LoRA's
    included, calls) takes decode-sized no-grad products weight first; anything else, and
    everything after the block, goes to the original. Nested blocks are one block."""
    original = F.linear
    if getattr(original, "weight_first", False):
        yield
        return
    F.linear = _weight_first(original)
    try:
        yield
    finally:
        F.linear = original
