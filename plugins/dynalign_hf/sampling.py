"""Sampling with each distinct prompt prefilled once, on the prefix machinery of `dynalign_hf.prefix`.

A GRPO step samples G answers to each prompt, and every prompt starts with the same value system
prompt. `generate_shared` runs that shared prefix once, each distinct prompt's own tokens once
(the scoring passes' stages A and B), lays the cache out as the left-padded prompts are, gathers
its rows for the samples that repeat a prompt, and hands it to the model's own `generate`, so
sampling keeps transformers' semantics (processors, stopping); each token is drawn by the race
`torch.multinomial` runs, from vectorised uniforms (`dynalign_hf.decoding`): the same
distribution from other random numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from dynalign_hf.cascade import redone_with_copies_if_ignored
from dynalign_hf.prefix import MIN_SHARED_PREFIX, SharedPass, cache_keyword, common_prefix_length

if TYPE_CHECKING:
    from dynalign_hf.skinny import Products


def generate_shared(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    *,
    generate: Callable[..., Any] | None = None,
    preallocate_cache: bool = True,
    products: Products = "auto",
    sampler: Literal["race", "multinomial"] = "race",
    **kwargs: Any,
) -> Any:
    """`model.generate(input_ids, attention_mask, **kwargs)` with each distinct (left-padded)
    prompt prefilled once: a GRPO group's G copies of one prompt, or the n samples asked of
    one conversation, share its cache rows instead of recomputing them; and, unless
    `preallocate_cache` is False, a cache that grows in place (`dynalign_hf.kvcache`) instead of
    one copied at every new token; decoding's few-row products taken the `products` way
    (`dynalign_hf.skinny`: by default the fastest measured on this machine); and a LoRA
    policy's active adapters merged into its weights for the call (`dynalign_hf.merged`).
    Sampling keeps its distribution. With `sampler="race"` each token is drawn from vectorised
    uniforms (`dynalign_hf.decoding`), so a seed samples other tokens than the plain call; with
    `"multinomial"` (transformers' own draw) almost always the same tokens (the products
    differ by float rounding, which can tip a near tie). Beam search and the other modes keep
    their own loops and prefill each row (their rows are expanded after the prefill). `generate`
    is the model's own generate method (default `model.generate`)."""
    from transformers.generation.configuration_utils import GenerationMode

    from dynalign_hf.decoding import sample_loop
    from dynalign_hf.merged import merged_adapters
    from dynalign_hf.skinny import skinny_products

    generate = generate or model.generate
    mode = _generation_mode(model, kwargs)
    if mode == GenerationMode.SAMPLE and sampler == "race" and "custom_generate" not in kwargs:
        kwargs["custom_generate"] = sample_loop
    one_beam = mode in (GenerationMode.SAMPLE, GenerationMode.GREEDY_SEARCH)  # beams expand the rows
    with merged_adapters(model):
        if input_ids.shape[1] >= 2 and one_beam:
            kwargs = _prefilled_once(model, input_ids, attention_mask, preallocate_cache, kwargs)
        with skinny_products(model, products):
            return generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def _generation_mode(model: Any, kwargs: dict[str, Any]) -> Any:
    """The `GenerationMode` of `generate(**kwargs)`: its generation config (or the model's) with
    the call's settings on it. Sampling's loop (`dynalign_hf.decoding.sample_loop`) replaces
    transformers' in `SAMPLE` only; the prefill is shared for one beam (greedy or sampled)."""
    import copy

    config = copy.deepcopy(kwargs.get("generation_config") or model.generation_config)
    config.update(**{key: value for key, value in kwargs.items() if key != "generation_config"})
    return config.get_generation_mode(kwargs.get("assistant_model"))


def _prefilled_once(
    model: Any, input_ids: Any, attention_mask: Any, preallocate_cache: bool, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """`kwargs` plus the cache of every row's prompt but its last token, each distinct prompt
    computed once (`_distinct_prompts_cache`) and its cache rows gathered for the rows that repeat it."""
    import torch

    from dynalign_hf.kvcache import preallocate

    rows = [tuple(r) for r in torch.cat([input_ids, attention_mask], dim=1).tolist()]
    first: dict[tuple[int, ...], int] = {}
    inverse = [first.setdefault(r, len(first)) for r in rows]
    pick = torch.tensor([rows.index(r) for r in first], device=input_ids.device)
    with torch.no_grad():
        keyword, cache = _distinct_prompts_cache(model, input_ids[pick], attention_mask[pick])
    if len(first) < len(rows):
        cache.batch_select_indices(torch.tensor(inverse, device=input_ids.device))
    if preallocate_cache:
        preallocate(cache, _new_tokens(model, kwargs) + 1)
    return {**kwargs, keyword: cache}


@redone_with_copies_if_ignored
def _distinct_prompts_cache(model: Any, input_ids: Any, attention_mask: Any) -> tuple[str, Any]:
    """The cache keyword and cache of each of these distinct left-padded prompts but its last
    token, laid out as the prompts are. When they start with a common prefix of at least
    MIN_SHARED_PREFIX tokens (a value's system prompt), it runs once and each prompt's own tokens
    after it (`SharedPass`, stages A and B); each row's cache is then its padding (zeros, masked
    out), the prefix's keys and values, and its own."""
    prompts = [tuple(ids[mask.bool()].tolist()) for ids, mask in zip(input_ids, attention_mask)]
    shared = common_prefix_length(prompts)
    if len(prompts) > 1 and shared >= MIN_SHARED_PREFIX:
        run = SharedPass(model, shared, pad_id=0)
        run.prefill(prompts[0])
        stage = run.contexts(prompts)
        if stage.cache is not None:
            owns = [len(p) - 1 - shared for p in prompts]
            for index, layer in enumerate(stage.cache.layers):
                prefix = run.prefix.layers[index]
                layer.keys = _laid_out(prefix.keys, layer.keys, owns, input_ids.shape[1] - 1, run.apart)
                layer.values = _laid_out(prefix.values, layer.values, owns, input_ids.shape[1] - 1, run.apart)
            return run.keyword, stage.cache
    ids, mask = input_ids[:, :-1], attention_mask[:, :-1]
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    output = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    keyword = cache_keyword(output)
    return keyword, output[keyword]


def _laid_out(prefix: Any, own: Any, owns: list[int], width: int, apart: bool) -> Any:
    """Left-padded rows of `width` positions: per row, zeros, then `prefix` (1, heads, shared,
    size), then its first `owns[row]` own positions of `own` (rows, heads, positions, size;
    right-padded, after a copy of the prefix unless the prefix was attended `apart`)."""
    shared = prefix.shape[2]
    offset = 0 if apart else shared
    out = own.new_zeros(own.shape[0], own.shape[1], width, own.shape[3])
    for row, length in enumerate(owns):
        start = width - shared - length
        out[row, :, start : start + shared] = prefix[0]
        out[row, :, start + shared :] = own[row, :, offset : offset + length]
    return out


def _new_tokens(model: Any, kwargs: dict[str, Any]) -> int:
    """How many tokens `generate` may add: its `max_new_tokens` argument, else that of the
    generation config it is given (TRL passes one) or of the model's own."""
    for config in (kwargs, kwargs.get("generation_config"), getattr(model, "generation_config", None)):
        value = config.get("max_new_tokens") if isinstance(config, dict) else getattr(config, "max_new_tokens", None)
        if isinstance(value, int) and value > 0:
            return value
    return 0
