"""transformers' sampling loop with the exponential race drawn from vectorised uniforms.

At every new token transformers' `_sample` calls `torch.multinomial(probs, 1)`, which races the
entries: an exponential variate E_i for every vocabulary entry of every row, the token the
arg-max of p_i / E_i. On a CPU torch fills those variates at about 19 ns each: for a GRPO batch
of SmolLM2 (8 rows x 49k entries) 7.7 ms a token, 8% of a decoding step. `race_draw` runs the
same race with E_i = -log(U_i) from `torch.rand`'s vectorised uniforms: 1.6 ms (BENCHMARKS.md,
issue 20 round 10). The same distribution, from other random numbers, so a seed samples other
tokens than transformers' own loop does. A race, not an inversion of each row's cumulative
distribution (one uniform per row, 0.2-1.9 ms): a cumulative sum carries every entry's rounding
to the entries after it, so two computations of the same logits that differ by float rounding
(merged adapter weights, a shared prefill) would draw different tokens for a seed now and then,
where in a race only a near tie between two entries can tip.

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


def race_draw(probs: torch.Tensor) -> torch.Tensor:
    """One index per row of `probs` (rows, entries), each drawn with probability proportional to
    its entry: the arg-max of p_i / E_i over exponential variates E_i = -log(U_i), U_i uniform
    from torch's default generator. Raises as `torch.multinomial` does on a row with a
    negative, infinite or NaN entry, or no mass."""
    total = probs.sum(dim=-1)  # a NaN or infinite entry makes its row's sum one too
    if not bool(torch.isfinite(total).all()) or bool((total <= 0).any()) or bool(probs.min() < 0):
        raise RuntimeError("probability tensor contains either `inf`, `nan`, element < 0 or a row without mass")
    # U = 0 would make every p / E of its row zero; the smallest normal U keeps E finite (87)
    logs = torch.rand(probs.shape, dtype=probs.dtype, device=probs.device).clamp_(min=torch.finfo(probs.dtype).tiny)
    logs = logs.log_()  # -E, so the largest p / E is the smallest p / log U
    return torch.div(probs, logs, out=logs).argmin(dim=-1)


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


draw = race_draw  # the loop's draw (a test puts torch.multinomial's here to compare with `_sample`)


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
