"""The loss pass with each group's prompt computed once.

TRL's loss runs the policy over `prompt + completion` for every row, with gradients, and a
GRPO batch holds G copies of each prompt. Here each distinct prompt (but its last token) is run
once, with gradients, its keys and values are gathered for the rows that share it, and each row
then runs only its prompt's last token and its completion on top of them. The completion
tokens' log-probabilities and entropies are TRL's own (its fused head on the same positions,
the same position ids); gradients reach the prompt's computation through the gathered keys and
values, summed over the group, so loss and gradient equal the unshared pass up to float
rounding (tests compare both).

Under gradient checkpointing transformers' layers drop the cache, because replaying a layer
would write it twice; its `_can_checkpoint_with_cache` lets a layer keep a cache it only reads.
The caches here never grow on a replay: the prompt pass's layer records the first keys and
values it sees and returns its inputs unchanged, and the completion pass's layer returns
`prefix + new` without storing, so both are set to be kept while the pass runs. Checkpointing
must be non-reentrant (transformers' default), since the prefix reaches the layers outside
their inputs; a reentrant one, a multimodal batch, a cache that is not plain dynamic layers
(sliding windows) or a batch without a shared prompt takes TRL's pass unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from dynalign.api import DynalignError
from dynalign_grpo import plain_head
from dynalign_grpo.plain_head import Entropy


class _RecordingLayer(DynamicLayer):
    """Keeps the first keys and values written to it; a replay gets its inputs back, as the
    first call did, and changes nothing."""

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Record the prompt's keys and values (first call only); return them unchanged."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
        return key_states, value_states


class _PrefixLayer(DynamicLayer):
    """Read-only keys and values of a prefix: `update` returns prefix + new tokens, stores nothing."""

    def __init__(self, keys: Any, values: Any) -> None:
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values = keys, values
        self.reads = 0

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """The prefix's keys and values followed by the new tokens'."""
        self.reads += 1
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def _layers(model: Any) -> list[Any]:
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


def _reentrant(layer: Any) -> bool:
    # transformers sets a partial of torch's checkpoint; anything else is treated as reentrant
    keywords = getattr(getattr(layer, "_gradient_checkpointing_func", None), "keywords", None) or {}
    return bool(keywords.get("use_reentrant", True))


def _cache(model: Any, layer: Callable[[int], DynamicLayer]) -> DynamicCache | None:
    """A cache for `model` whose layer i is `layer(i)`, in place of its own plain dynamic ones;
    None when the model's cache has other layer kinds (sliding windows: not handled here)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cache = DynamicCache(config=config)
    if len(cache.layers) != config.num_hidden_layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [layer(index) for index in range(len(cache.layers))]
    return cache


def _cache_argument(model: Any) -> str:
    # transformers 5.2x renamed `past_key_values` to `cache` (vLLM's pin is older)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def can_share(model: Any, unwrapped: Any, batch_size: int, kwargs: dict[str, Any]) -> bool:
    """Whether a `_get_per_token_logps_and_entropies` call may take the shared path: one process
    (`model` not wrapped for distributed training, which expects one forward per backward), text
    only, no auxiliary loss, and checkpointing (if on) non-reentrant."""
    if any(value is not None for key, value in kwargs.items() if key not in {"compute_entropy", "compute_aux_loss"}):
        return False
    if kwargs.get("compute_aux_loss") or batch_size < 2 or unwrapped is not model:
        return False
    layers = _layers(model)
    return bool(layers) and not any(layer.gradient_checkpointing and _reentrant(layer) for layer in layers)


@contextmanager
def _cache_kept_under_checkpointing(model: Any) -> Iterator[None]:
    layers = _layers(model)
    for layer in layers:
        layer._can_checkpoint_with_cache = True  # both caches here are replay-safe (module docstring)
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache


def _cache_lost() -> DynalignError:
    # a transformers whose checkpointed layers drop the cache regardless: never a silent wrong loss
    return DynalignError(
        "the shared-prompt loss pass lost its prompt cache in this transformers version; "
        "set optimizer.options.share_loss_prompt = false"
    )


def tail_forward(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_width: int, **head: Any
) -> Any | None:
    """`model`'s output (called with `head`'s arguments) over each row's last prompt token and
    its completion, `input_ids[:, -completion_width - 1:]`, on the keys and values of its distinct
    prompt, computed once and gathered (`input_ids` is `prompt + completion`, prompts
    left-padded; positions as in one pass over the whole row). None when no two rows share a
    prompt or the model's cache is not plain dynamic layers (the caller then runs the whole rows)."""
    width = input_ids.shape[1] - completion_width
    if width < 2:
        return None
    prompts = torch.cat([input_ids[:, :width], attention_mask[:, :width]], dim=1)
    distinct, rows_of = torch.unique(prompts, dim=0, return_inverse=True)
    cache = _cache(model, lambda index: _RecordingLayer())
    if distinct.shape[0] == input_ids.shape[0] or cache is None:
        return None
    keyword = _cache_argument(model)
    with _cache_kept_under_checkpointing(model):
        model(
            input_ids=distinct[:, : width - 1],
            attention_mask=distinct[:, width : 2 * width - 1],
            use_cache=True,
            logits_to_keep=1,
            **{keyword: cache},
        )
        if not all(layer.is_initialized for layer in cache.layers):
            raise _cache_lost()
        recorded = cache.layers
        prefix = _cache(
            model,
            lambda index: _PrefixLayer(
                recorded[index].keys.index_select(0, rows_of), recorded[index].values.index_select(0, rows_of)
            ),
        )
        assert prefix is not None  # the same model's cache as the prompt pass's
        output = model(input_ids=input_ids[:, width - 1 :], attention_mask=attention_mask, **head, **{keyword: prefix})
    if any(layer.reads == 0 for layer in prefix.layers):
        raise _cache_lost()
    return output


def shared_prompt_logps(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_width: int,
    temperature: float = 1.0,
    entropy: Entropy = "detached",
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Per-token log-probabilities (B, completion_width) and entropies (None when `entropy` is
    `none`, or TRL's fused head gives none) of the completions in `input_ids` at `temperature`,
    each distinct prompt computed once (`tail_forward`; None as there). On a CPU, logits that fit
    go through `dynalign_grpo.plain_head`, others through TRL's fused head (which `model` carries)."""
    tail = input_ids[:, -completion_width - 1 :]
    if plain_head.fits(model, len(input_ids), completion_width):
        positions = torch.arange(completion_width, device=input_ids.device)  # the last prompt token's on
        output = tail_forward(model, input_ids, attention_mask, completion_width, logits_to_keep=positions)
        if output is None:
            return None
        mask = attention_mask[:, -completion_width:]
        return plain_head.completion_logps(output.logits, tail[:, 1:], mask, temperature, entropy)
    labels = tail.masked_fill(attention_mask[:, -completion_width - 1 :] == 0, -100)
    labels[:, 0] = -100  # the prompt's last token is context, as in TRL's pass
    output = tail_forward(model, input_ids, attention_mask, completion_width, labels=labels, fused_lm_head=True)
    if output is None:
        return None
    entropies = output.entropy[:, -completion_width:] if output.entropy is not None and entropy != "none" else None
    return output.log_probs[:, -completion_width:], entropies


class SharedPromptLoss:
    """Trainer mixin: TRL's per-token pass, each distinct prompt computed once per chunk where
    `options.share_loss_prompt` is on and the call allows it (`can_share`)."""

    def _shares_prompt(self, model: Any, rows: int, kwargs: dict[str, Any]) -> bool:
        """Whether a pass of `model` over `rows` rows (TRL's keyword arguments `kwargs`) shares prompts."""
        unwrapped = self.accelerator.unwrap_model(model)  # type: ignore[attr-defined]
        return bool(self.options.share_loss_prompt) and can_share(model, unwrapped, rows, kwargs)  # type: ignore[attr-defined]

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: Any,
        attention_mask: Any,
        logits_to_keep: int,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> Any:
        size = batch_size or input_ids.size(0)
        if not self._shares_prompt(model, size, kwargs):
            return super()._get_per_token_logps_and_entropies(  # type: ignore[misc]
                model, input_ids, attention_mask, logits_to_keep, batch_size, **kwargs
            )
        want_entropy = kwargs.get("compute_entropy", False)
        # TRL's entropy bonus differentiates the entropy; otherwise it only feeds metrics and masks
        bonus = getattr(self, "_entropy_bonus_enabled", True)
        entropy_mode: Entropy = "none" if not want_entropy else "grad" if bonus else "detached"
        temperature = self.temperature  # type: ignore[attr-defined]
        logps, entropies = [], []
        for start in range(0, input_ids.size(0), size):
            rows = slice(start, start + size)
            with self.accelerator.autocast():  # type: ignore[attr-defined]
                shared = shared_prompt_logps(
                    model, input_ids[rows], attention_mask[rows], logits_to_keep, temperature, entropy_mode
                )
            if shared is None:
                shared = super()._get_per_token_logps_and_entropies(  # type: ignore[misc]
                    model, input_ids[rows], attention_mask[rows], logits_to_keep, **kwargs
                )[:2]
            logps.append(shared[0])
            entropies.append(shared[1])
        entropy = torch.cat(entropies, dim=0) if want_entropy and all(e is not None for e in entropies) else None
        return torch.cat(logps, dim=0), entropy, None
