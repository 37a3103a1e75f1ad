"""The loss pass's completion log-probabilities from the model's own logits, on a CPU, when they fit.

TRL's fused head (`add_fused_lm_head`) never holds the `(tokens, vocabulary)` logits: it
projects the hidden states in vocabulary tiles and, on a device without Triton, folds each tile
into running statistics with about a dozen torch operations over the whole tile; its backward
pass projects every tile again and turns it into the gradient with as many more. On a GPU that
saves memory at little cost. On a CPU, for a batch whose logits are small (the demo's loss: 8
rows x 64 positions x 49k tokens, 100 MB in fp32), it is 2-3x slower than keeping the logits
once: one `log_softmax`, whose backward is a single fused kernel, and no second projection
(BENCHMARKS.md, issue 20 round 9). So on a CPU, while the logits fit in `HEAD_BYTES`, the loss
pass takes the model's own logits (its own soft-capping or scaling included) and this module
turns them into TRL's per-token outputs; beyond that, or on an accelerator, TRL's head stays.
The numbers are TRL's up to float rounding (tests compare log-probabilities, entropies, loss
and gradient).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

HEAD_BYTES = 256 << 20  # fp32 logits a CPU loss pass may hold at once (the log-softmax keeps one more copy)
Entropy = Literal["none", "detached", "grad"]


def fits(model: Any, rows: int, positions: int) -> bool:
    """Whether a loss pass of `model` over `rows` x `positions` completion tokens takes the
    plain head: the model's head is an fp32 one on a CPU and those logits fit in `HEAD_BYTES`."""
    head = getattr(model, "get_output_embeddings", lambda: None)()
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        return False
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        return False
    return rows * positions * weight.shape[0] * 4 <= HEAD_BYTES


def completion_logps(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, temperature: float, entropy: Entropy
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probabilities of `targets` (rows, positions) under `logits` (rows,
    positions, vocabulary) divided by `temperature`, and the entropies of those distributions
    (`none`: not computed; `detached`: for metrics only, no gradient; `grad`: with gradient, for
    an entropy bonus); both 0 where `mask` is 0, as TRL's head gives them."""
    scaled = logits.float() / temperature if temperature != 1.0 else logits.float()
    logps = torch.log_softmax(scaled, dim=-1)
    del scaled  # only the log-softmax output is kept for the backward pass
    chosen = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    keep = mask.bool()
    entropies = None
    if entropy != "none":
        source = logps if entropy == "grad" else logps.detach()
        entropies = -(source.exp() * source).sum(dim=-1).masked_fill(~keep, 0.0)
    return chosen.masked_fill(~keep, 0.0), entropies
