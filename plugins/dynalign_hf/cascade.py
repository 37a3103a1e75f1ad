"""Attention to a prefix that every row shares, without a copy of it per row.

`forward_shared` (`dynalign_hf.prefix`) runs a shared prefix (a judge's rubric, a value's system
prompt, a teacher's exemplars) once. Given to the model as an ordinary key/value cache, that
prefix is copied for every row of a batch, copied again at every layer when the rows' own keys
are appended, and copied three times over when grouped-query attention repeats the key heads;
then each row attends to it on its own. Here the cache holds only the rows' own tokens, and an
attention function registered with transformers attends in two parts, each through torch's CPU
flash-attention kernel, merged exactly by their log-sum-exps:

  - the prefix part, for all rows at once: every query of every row, one sequence per key head,
    against the prefix's keys and values (kept once, batch 1), with no mask;
  - the rows' own part, with the causal and padding mask transformers builds for those tokens.

Every row's tokens come after the whole prefix (positions are given explicitly), so no query
masks any prefix token. The result equals attention over the concatenated keys up to float
rounding (tests check it). Models whose attention does not go through transformers' attention
interface, or that need what this function does not do (sliding windows, soft-capping, sinks),
keep the copying path.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

NAME = "dynalign_shared_prefix"  # the attention implementation's name while a prefix is shared
KEYWORD = "dynalign_shared_prefix"  # the model call's keyword that carries the prefix to each layer
UNSUPPORTED = ("sliding_window", "softcap", "s_aux")  # attention arguments this function cannot honour


class PrefixIgnored(RuntimeError):
    """A layer attended its own way, without the shared prefix: the pass's numbers are wrong."""


_IGNORING: set[type] = set()  # model classes seen attending their own way: they keep the copies
_ENTERED: dict[int, tuple[int, Any]] = {}  # per model config: entries still open, its own implementation
_ENTERING = threading.Lock()


@dataclass
class SharedPrefix:
    """A batch-1 key/value cache of the prefix all rows share, and how many attention calls used it."""

    cache: Any
    uses: int = 0

    def keys_values(self, layer: int) -> tuple[Any, Any]:
        """The prefix's keys and values (1, key heads, prefix length, head size) at `layer`."""
        entry = self.cache.layers[layer]
        return entry.keys, entry.values


def supports(model: Any) -> bool:
    """Whether `model`'s attention goes through transformers' attention interface as sdpa or
    eager (so the shared-prefix function can stand in for it), full attention in every layer, on
    the CPU (whose flash kernel gives the log-sum-exps; accelerators keep the copying path)."""
    try:
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS  # noqa: F401
        from transformers.modeling_utils import AttentionInterface  # noqa: F401
    except ImportError:
        return False
    base = _base(model)
    config = getattr(base, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text, "layer_types", None)
    if layer_types:
        full = all(t == "full_attention" for t in layer_types)
    else:
        full = getattr(text, "sliding_window", None) is None
    return (
        type(base) not in _IGNORING
        and getattr(getattr(base, "device", None), "type", None) == "cpu"
        and bool(getattr(type(base), "_supports_attention_backend", False))
        and getattr(config, "_attn_implementation", None) in ("sdpa", "eager")
        and full
        and not getattr(text, "attn_logit_softcapping", None)
    )


def check_attended(model: Any, shared: SharedPrefix, layers: int) -> None:
    """Raise `PrefixIgnored` (and keep `model`'s class on the copying path from now on) unless
    all `layers` attended to `shared`."""
    if shared.uses != layers:
        base = _base(model)
        _IGNORING.add(type(base))
        raise PrefixIgnored(f"shared-prefix attention ran in {shared.uses} of {layers} layers")


def redone_with_copies_if_ignored(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` (a scoring pass), run once more if a layer ignored the shared prefix: by
    then the model's class keeps the copying path, so the second run gives the right numbers."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except PrefixIgnored:
            return function(*args, **kwargs)

    return run


def _base(model: Any) -> Any:
    """The transformers model under a peft wrapper (the model itself when unwrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@functools.cache
def _register() -> None:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(NAME, shared_prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


@contextmanager
def attending_to(model: Any) -> Iterator[None]:
    """While entered, `model`'s attention is the shared-prefix function (which falls back to
    sdpa for a call that carries no prefix); for models that `supports`. Entries may overlap
    (threads scoring with one model): the model's own implementation returns with the last exit."""
    base = _base(model)
    config = base.config
    _register()
    with _ENTERING:
        count, was = _ENTERED.get(id(config), (0, config._attn_implementation))
        _ENTERED[id(config)] = (count + 1, was)
        config._attn_implementation = NAME
    try:
        yield
    finally:
        with _ENTERING:
            count, was = _ENTERED.pop(id(config))
            if count > 1:
                _ENTERED[id(config)] = (count - 1, was)
            else:
                config._attn_implementation = was


def shared_prefix_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Attention of `query` (batch, heads, queries, head size) to the shared prefix the call's
    `KEYWORD` argument carries, then to the rows' own `key`/`value` under `attention_mask`
    (sdpa's boolean mask, True where a query may look; None: causal). Without a prefix: sdpa."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix: SharedPrefix | None = kwargs.pop(KEYWORD, None)
    if prefix is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    asked = [name for name in UNSUPPORTED if kwargs.get(name) is not None]
    if asked or dropout:
        raise ValueError(f"shared-prefix attention cannot apply {asked or ['dropout']}; use the copying path")
    prefix_keys, prefix_values = prefix.keys_values(module.layer_idx)
    prefix.uses += 1
    rows, heads, length, size = query.shape
    key_heads = key.shape[1]
    group = heads // key_heads
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    # the rows' own part; query heads j*group .. j*group+group-1 share key head j (as in repeat_kv)
    own_keys = key[:, :, None].expand(-1, -1, group, -1, -1).reshape(rows, heads, -1, size)
    own_values = value[:, :, None].expand(-1, -1, group, -1, -1).reshape(rows, heads, -1, size)
    allowed = attention_mask if attention_mask is not None else _causal(length, key.shape[2], query.device)
    if allowed.dtype != torch.bool:  # an additive mask: 0 where a query may look
        allowed = allowed == 0
    additive = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device).masked_fill_(~allowed, -math.inf)
    mine, mine_lse = flash(query, own_keys, own_values, 0.0, False, attn_mask=additive, scale=scaling)
    # a query that may see none of the rows' own keys (a row of padding) gets weight 0 there,
    # not the kernel's log-sum-exp of 0
    mine_lse = mine_lse.masked_fill(~allowed.any(-1), -math.inf)
    # the prefix part, all rows' queries at once as one sequence per key head
    packed = query.reshape(rows, key_heads, group * length, size).transpose(0, 1).reshape(1, key_heads, -1, size)
    theirs, theirs_lse = flash(packed, prefix_keys, prefix_values, 0.0, False, scale=scaling)
    theirs = theirs.view(key_heads, rows, group * length, size).transpose(0, 1).reshape(rows, heads, length, size)
    theirs_lse = theirs_lse.view(key_heads, rows, group * length).transpose(0, 1).reshape(rows, heads, length)
    top = torch.maximum(mine_lse, theirs_lse)
    mine_weight, theirs_weight = (mine_lse - top).exp_(), (theirs_lse - top).exp_()
    out = mine * mine_weight[..., None] + theirs * theirs_weight[..., None]
    out /= (mine_weight + theirs_weight)[..., None]
    return out.transpose(1, 2).contiguous(), None


def _causal(length: int, own: int, device: Any) -> Any:
    """The boolean mask sdpa's `None` stands for: each query (the last `length` of `own` positions)
    sees the keys up to its own position."""
    import torch

    queries = torch.arange(own - length, own, device=device)[:, None]
    return (torch.arange(own, device=device)[None, :] <= queries)[None, None]
