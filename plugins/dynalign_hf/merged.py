"""Sampling from and scoring with a LoRA-trained policy through its adapters merged into one weight per layer.

A LoRA layer computes `x @ W.T + scale * (x @ A.T) @ B.T`: for SmolLM2 with adapters on all
210 linear layers, that is 840 small extra operations per decoding step (two products, a
scaling and a sum per layer), each bound by its call overhead, not its arithmetic; on a 2-core
CPU they took about 15% of sampling a GRPO batch (BENCHMARKS.md, issue 20 round 7), and a
scoring pass pays them over every token it runs (a self-judged GRPO step's scoring took 0.84x
with the adapters merged, the merge included: round 11). Within
`merged_adapters(model)`, every adapted linear layer computes no-grad passes with one weight
`W + scale * B @ A`, made once on entry and dropped on exit (a copy of the adapted weights:
425 MB for SmolLM2, for the length of one generate or scoring call). It is the same function up to float
rounding, so sampling keeps its distribution (and almost always its tokens for a seed: a near
tie between two tokens can tip, as one did in 12 steps of 8 x 48 tokens); the trained weights
and adapters are not touched, and passes with gradients take the layer's own forward.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F


def _lora_linear_class() -> type | None:
    """peft's LoRA linear layer, if peft is loaded: a model holds LoRA layers only then, and
    importing it here would cost a process that samples without adapters (`score`, the eval)
    2.3 s of start-up."""
    return getattr(sys.modules.get("peft.tuners.lora.layer"), "Linear", None)


def _active_adapters(module: Any) -> list[str]:
    """The adapters of a peft LoRA linear layer that its forward would add, if every one is a
    plain LoRA (no DoRA or other variant) that merging reproduces; else [] (also for a layer
    an enclosing block already merged: its forward is an instance attribute)."""
    if module.merged or module.disable_adapters or "forward" in vars(module):
        return []
    names = [name for name in module.active_adapters if name in module.lora_A]
    base = module.get_base_layer()
    if type(base) is not torch.nn.Linear or not base.weight.dtype.is_floating_point:
        return []  # quantized or otherwise special base layers keep their own forward
    variants = getattr(module, "lora_variant", None) or {}  # peft's DoRA and the like
    for name in names:
        dropout = module.lora_dropout[name]
        live_dropout = module.training and not isinstance(dropout, torch.nn.Identity) and dropout.p > 0
        variant = name in variants or (getattr(module, "use_dora", None) or {}).get(name, False)
        if variant or live_dropout or module.lora_A[name].weight.dtype != base.weight.dtype:
            return []
    return names


def _plus_delta(module: Any, name: str, weight: torch.Tensor) -> torch.Tensor:
    """A new tensor: `weight` plus adapter `name`'s delta, `scale * B @ A`, in one fused product
    (one pass over the weight, where a delta made apart and then added takes three)."""
    if module.fan_in_fan_out:  # the delta is transposed; peft's own method knows how
        return weight + module.get_delta_weight(name).detach()
    a, b = module.lora_A[name].weight.detach(), module.lora_B[name].weight.detach()
    return torch.addmm(weight, b, a, alpha=module.scaling[name])


def _merged_forward(module: Any, weight: torch.Tensor) -> Any:
    """`module`'s forward that takes no-grad passes through `weight` (its merged weight)."""
    own = type(module).forward
    bias = module.get_base_layer().bias

    def forward(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if args or kwargs or torch.is_grad_enabled() or x.dtype != weight.dtype:
            return own(module, x, *args, **kwargs)
        return F.linear(x, weight, bias)

    return forward


@contextmanager
def merged_adapters(model: Any) -> Iterator[int]:
    """Within the block, `model`'s LoRA linear layers compute no-grad passes with their active
    adapters merged into a temporary weight. Yields how many layers were merged (0 for a model
    without adapters, with adapters disabled, as the reference policy is, or within a block
    that merged them already)."""
    lora_linear = _lora_linear_class()
    merged: list[Any] = []
    try:
        with torch.no_grad():
            for module in model.modules() if lora_linear is not None else ():
                names = _active_adapters(module) if isinstance(module, lora_linear) else []
                if names:
                    weight = module.get_base_layer().weight.detach()
                    for name in names:
                        weight = _plus_delta(module, name, weight)
                    module.forward = _merged_forward(module, weight)
                    merged.append(module)
        yield len(merged)
    finally:
        for module in merged:
            del module.forward  # the class's own forward shows through again
