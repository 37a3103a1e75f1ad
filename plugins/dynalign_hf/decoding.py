"""transformers' sampling loop with a token draw that needs one random number per row, not per token.

At every new token transformers' `_sample` calls `torch.multinomial(probs, 1)`, which draws an
exponential variate for every vocabulary entry of every row and takes the arg-max of
`probs / variate`: for a GRPO batch of SmolLM2 (8 rows x 49k entries) about 7.7 ms on a 2-core
CPU, 8% of a decoding step. `inverse_cdf_draw` inverts each row's cumulative distribution
instead: one uniform variate per row and a float64 cumulative sum, 0.2 ms (BENCHMARKS.md, issue
20 round 10). Both draw each token with its probability; they read different random numbers, so
a seed samples other tokens than transformers' own loop does.

`sample_loop` is that loop with this draw, given to `generate` as its `custom_generate`: the same
logits processors, stopping criteria, end-of-sequence padding and cache handling, through the
same model hooks (`_prefill`, `prepare_inputs_for_generation`, `_update_model_kwargs_for_generation`).
Calls it does not cover (greedy decoding, a streamer, returned scores or a dict, synced GPUs, a
compiled forward, encoder-decoder models) go to transformers' `_sample` unchanged.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from transformers.generation.utils import GenerationMixin


def inverse_cdf_draw(probs: torch.Tensor) -> torch.Tensor:
    """One index per row of `probs` (rows, entries), each drawn with probability proportional to
    its entry, from one uniform variate per row of torch's default generator. Raises as
    `torch.multinomial` does on a row with a negative, infinite or NaN entry, or no mass."""
    cdf = probs.to(torch.float64).cumsum(dim=-1)
    total = cdf[:, -1:]
    if not bool(torch.isfinite(total).all()) or bool((total <= 0).any()) or bool((probs < 0).any()):
        raise RuntimeError("probability tensor contains either `inf`, `nan`, element < 0 or a row without mass")
    # u in [0, 1) and u * total < total in round-to-nearest, so the first cumulative sum above the
    # point is an entry with mass, never one past the row's last (nor one without mass, at u = 0)
    point = torch.rand(total.shape, dtype=torch.float64, device=probs.device) * total
    return torch.searchsorted(cdf, point, right=True).squeeze(-1)


def _covered(model: Any, generation_config: Any, synced_gpus: bool, streamer: Any, model_kwargs: dict) -> bool:
    """Whether `sample_loop` runs this call itself (else transformers' `_sample` does)."""
    return bool(
        generation_config.do_sample
        and not generation_config.return_dict_in_generate
        and not synced_gpus
        and streamer is None
        and not model.config.is_encoder_decoder
        and not model._valid_auto_compile_criteria(model_kwargs, generation_config)
    )


draw = inverse_cdf_draw  # the loop's draw (a test puts torch.multinomial's here to compare with `_sample`)


def sample_loop(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    synced_gpus: bool = False,
    streamer: Any = None,
    **model_kwargs: Any,
) -> torch.LongTensor:
    """transformers' `_sample` contract (pass as `generate(..., custom_generate=sample_loop)`):
    the prompt rows followed by their sampled tokens, each drawn by `draw` from the processed
    distribution; finished rows are padded with the pad token, as transformers pads them."""
    if not _covered(model, generation_config, synced_gpus, streamer, model_kwargs):
        return GenerationMixin._sample(
            model,
            input_ids,
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            generation_config=generation_config,
            synced_gpus=synced_gpus,
            streamer=streamer,
            **model_kwargs,
        )
    pad = generation_config._pad_token_tensor
    pad = pad.to(input_ids.device) if pad is not None else None
    pads_finished = any(hasattr(criteria, "eos_token_id") for criteria in stopping_criteria)
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
    first = not generation_config.is_assistant
    outputs = model._prefill(input_ids, generation_config, model_kwargs, is_first_iteration=first)
    decode = getattr(model, "_optimize_model_for_decode", nullcontext)
    with decode():
        while True:
            model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs, is_encoder_decoder=False)
            logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=input_ids.device)
            del outputs  # the prefill's logits can be large
            scores = logits_processor(input_ids, logits)
            tokens = draw(torch.nn.functional.softmax(scores, dim=-1))
            if pads_finished:
                tokens = tokens * unfinished + pad * (1 - unfinished)
            input_ids = torch.cat([input_ids, tokens[:, None]], dim=-1)
            unfinished = unfinished & ~stopping_criteria(input_ids, None)
            if unfinished.max() == 0:
                return input_ids
            length = 1 if model_kwargs["use_cache"] else None
            inputs = model.prepare_inputs_for_generation(input_ids, next_sequence_length=length, **model_kwargs)
            outputs = model(**inputs, return_dict=True)
