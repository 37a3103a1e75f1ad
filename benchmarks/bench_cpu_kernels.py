"""Where a CPU spends a demo step's time, kernel by kernel, on the machine at hand.

Prints one JSON line per measurement (SmolLM2-135M-Instruct, fp32, this machine's threads):

- `gemm`: fp32 matrix-multiply rates at the shapes a step runs (decode: 8 rows; scoring and
  the loss: about 1,000 rows; the 49k-token output layer);
- `linear-order`: a decode-sized product (1-128 rows by each of SmolLM2's weight shapes, the
  weights cycled through more copies than the caches hold, as in a forward pass) taken as
  torch's `linear` (x @ W.T), weight first ((W @ x.T).T) and, for the output layer, through a
  oneDNN-packed weight: the ways `dynalign_hf.skinny` chooses among;
- `decode-rows`: greedy decoding of 8, 16 and 32 CA prompts (what `generation_batch_size`
  trades): seconds per new token for the whole batch;
- `decode-profile`: the top operators of sampling the demo's batch (2 prompts with CA's system
  prompt x 4 samples, LoRA adapter, temperature 1), from `torch.profiler`: as the trainer
  samples, with decoding's products in torch's order, and with transformers' concatenating cache;
- `loss`: forward and backward of the demo's loss batch shape (8 rows of 123 tokens, 65
  completion positions through the output layer), LoRA, gradient checkpointing on;
- `head`: the loss's output layer alone, forward and backward, over the demo's 520 completion
  positions (SmolLM2's 49k x 576 weight): TRL's fused head (vocabulary tiles) against
  `dynalign_grpo.plain_head` (the logits kept, one log_softmax), entropies for metrics;
- `draw`: one sampled token per row of the demo's batch (8 x 49k probabilities):
  `torch.multinomial`, `dynalign_hf.decoding.race_draw` (the same race from vectorised
  uniforms) and an inversion of each row's cumulative distribution (one uniform per row; not
  used); with each, how many of 500 rows draw another token for the same seed when the logits
  move by 1e-4 (float rounding between two ways of computing them);
- `merge`: the merged weights sampling takes (`dynalign_hf.merged`, SmolLM2's 210 adapted
  layers, a LoRA of the demo's shape): each delta made apart and then added, as before round 10,
  against one fused product per layer (what `merged_adapters` does).

    .venv/bin/python benchmarks/bench_cpu_kernels.py
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any


def seconds(run: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of `run` after one warm-up call."""
    import statistics

    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def emit(**row: Any) -> None:
    print(json.dumps(row), flush=True)


def gemm() -> None:
    import torch

    for rows in (8, 1024):
        for inner, outer in ((576, 1536), (1536, 576), (576, 49152)):
            a, b = torch.randn(rows, inner), torch.randn(inner, outer)
            took = seconds(partial(torch.mm, a, b), 10 if outer > 10000 else 30)
            emit(
                part="gemm",
                shape=f"{rows}x{inner}x{outer}",
                ms=round(took * 1e3, 2),
                gflops=round(2 * rows * inner * outer / took / 1e9, 1),
            )


def _product(way: str, x: Any, matrices: list[Any], packs: list[Any], turns: Any) -> Any:
    """One decode-sized product `way`, by the next of `matrices` in turn."""
    import torch.nn.functional as F

    from dynalign_hf.skinny import packed_linear, weight_first

    i = next(turns)
    if way == "torch":
        return F.linear(x, matrices[i])
    if way == "weight_first":
        return weight_first(x, matrices[i])
    return packed_linear(x, matrices[i], None, packs[i])


def linear_order() -> None:
    import itertools

    import torch

    from dynalign_hf.skinny import can_pack, pack

    for out_features, in_features in ((49152, 576), (1536, 576), (576, 1536), (576, 576), (192, 576)):
        count = max(2, 600_000_000 // (out_features * in_features * 4))  # more bytes than the caches hold
        matrices = [torch.randn(out_features, in_features) for _ in range(count)]
        # only the output layer is ever packed (dynalign_hf.skinny), once per generate call: packed ahead here
        packs = [pack(m) for m in matrices] if out_features > 10_000 and can_pack() else []
        ways = ["torch", "weight_first"] + (["packed"] if packs else [])
        turns = itertools.cycle(range(count))
        with torch.no_grad():
            for rows in (1, 8, 16, 32, 64, 128):
                x = torch.randn(rows, in_features)
                figures = {
                    f"{way}_ms": round(seconds(partial(_product, way, x, matrices, packs, turns), 20) * 1e3, 2)
                    for way in ways
                }
                emit(part="linear-order", shape=f"{rows}x{in_features}x{out_features}", **figures)


def decode_rows(model: Any, tokenizer: Any, value: Any) -> None:
    import torch

    from dynalign_hf.sampling import generate_shared
    from dynalign_hf.textgen import _left_padded, render

    for rows in (8, 16, 32):
        texts = [render(tokenizer, [{"role": "user", "content": p.prompt}]) for p in value.prompts[:rows]]
        batch = _left_padded(tokenizer, texts, model.device)
        settings = {
            "max_new_tokens": 48,
            "min_new_tokens": 48,
            "do_sample": False,
            "pad_token_id": tokenizer.pad_token_id,
        }
        with torch.no_grad():
            took = seconds(partial(generate_shared, model, batch["input_ids"], batch["attention_mask"], **settings), 2)
        emit(
            part="decode-rows", rows=rows, ms_per_token=round(took / 48 * 1e3), tokens_per_s=round(rows * 48 / took, 1)
        )


def decode_profile(model: Any, tokenizer: Any, value: Any) -> None:
    import torch
    from bench_generate import demo_sampling_batch
    from torch.profiler import ProfilerActivity, profile

    from dynalign_hf.sampling import generate_shared

    ids, mask = demo_sampling_batch(model, tokenizer, value)
    settings = {"max_new_tokens": 32, "min_new_tokens": 32, "do_sample": True, "temperature": 1.0, "top_k": None}
    variants = {"as trained": {}, "torch order": {"products": "torch"}, "concatenated": {"preallocate_cache": False}}
    for name, options in variants.items():
        with torch.no_grad():
            generate_shared(model, ids, mask, **options, **settings)
            with profile(activities=[ProfilerActivity.CPU]) as profiled:
                generate_shared(model, ids, mask, **options, **settings)
        events = sorted(profiled.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:6]
        emit(
            part="decode-profile",
            variant=name,
            ms_per_token={e.key: round(e.self_cpu_time_total / 1e3 / 32, 1) for e in events},
            total_ms_per_token=round(sum(e.self_cpu_time_total for e in profiled.key_averages()) / 1e3 / 32, 1),
        )


def loss(model: Any) -> None:
    import torch

    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    ids = torch.randint(100, 40000, (8, 123))

    def step() -> None:
        logits = model(input_ids=ids, logits_to_keep=65).logits
        torch.log_softmax(logits.float(), -1).mean().backward()

    emit(part="loss", rows=8, tokens=123, seconds=round(seconds(step, 3), 2))


def head() -> None:
    import torch
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE, _ChunkedLogProbFunction

    from dynalign_grpo.plain_head import completion_logps

    generator = torch.Generator().manual_seed(0)
    positions, width, vocabulary = 520, 576, 49152
    weight = torch.randn(vocabulary, width, generator=generator) * 0.02
    targets = torch.randint(0, vocabulary, (positions,), generator=generator)
    hidden = torch.randn(positions, width, generator=generator)
    outputs = ("log_probs", "entropy")

    def fused() -> None:
        h = hidden.clone().requires_grad_()
        args = (h, weight, None, targets, 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs)
        _ChunkedLogProbFunction.apply(*args)[0].sum().backward()

    def plain() -> None:
        h = hidden.clone().requires_grad_()
        logits = torch.nn.functional.linear(h, weight)[None]
        mask = torch.ones(1, positions)
        completion_logps(logits, targets[None], mask, 1.0, "detached")[0].sum().backward()

    for name, run in (("trl-fused", fused), ("plain", plain)) * 2:
        emit(part="head", head=name, positions=positions, seconds=round(seconds(run, 5), 3))


def draw() -> None:
    import torch

    from dynalign_hf.decoding import race_draw

    def inverse_cdf(probs: Any) -> Any:
        cdf = probs.double().cumsum(dim=-1)
        point = torch.rand(cdf[:, -1:].shape, dtype=torch.float64) * cdf[:, -1:]
        return torch.searchsorted(cdf, point, right=True).squeeze(-1)

    ways = {
        "multinomial": lambda probs: torch.multinomial(probs, num_samples=1).squeeze(-1),
        "race": race_draw,
        "inverse-cdf": inverse_cdf,
    }
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 49152, generator=generator) * 3
    nudge = torch.randn(logits.shape, generator=generator) * 1e-4
    probs, nudged = torch.softmax(logits, dim=-1), torch.softmax(logits + nudge, dim=-1)
    batch = probs[:8].contiguous()
    for name, way in list(ways.items()) * 2:
        torch.manual_seed(5)
        drawn = way(probs)
        torch.manual_seed(5)
        moved = int((way(nudged) != drawn).sum())
        ms = seconds(partial(way, batch), 50) * 1e3
        emit(part="draw", way=name, rows=8, ms=round(ms, 3), moved_of_500_at_1e_4=moved)


def merge(model: Any) -> None:
    import torch
    from peft.tuners.lora.layer import Linear

    from dynalign_hf.merged import merged_adapters

    layers = [m for m in model.modules() if isinstance(m, Linear)]

    def apart() -> None:
        with torch.no_grad():
            _ = [m.get_base_layer().weight + m.get_delta_weight("default") for m in layers]

    def fused() -> None:
        with merged_adapters(model):
            pass

    for name, run in (("delta-apart", apart), ("fused", fused)) * 2:
        emit(part="merge", way=name, layers=len(layers), seconds=round(seconds(run, 5), 3))


def main() -> None:
    """Run the chosen parts in order; one JSON line per figure."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="gemm,linear-order,decode-rows,decode-profile,loss,head,draw,merge")
    args = parser.parse_args()
    parts = args.parts.split(",")

    import torch
    from peft import LoraConfig, get_peft_model

    from dynalign.plugins import load_registry
    from dynalign_hf.backend import HFChatModel

    emit(part="machine", threads=torch.get_num_threads(), torch=torch.__version__)
    if "gemm" in parts:
        gemm()
    if "linear-order" in parts:
        linear_order()
    if "head" in parts:
        head()
    if "draw" in parts:
        draw()
    if not {"decode-rows", "decode-profile", "loss", "merge"} & set(parts):
        return  # no part needs the model
    value = load_registry().get("value", "ca").obj
    model, tokenizer = HFChatModel().loaded()
    model.eval()
    if "decode-rows" in parts:
        decode_rows(model, tokenizer, value)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.eval()
    if "decode-profile" in parts:
        decode_profile(model, tokenizer, value)
    if "loss" in parts:
        loss(model)
    if "merge" in parts:
        with torch.no_grad():  # a trained-looking adapter (B non-zero), as sampling sees after a step
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.01)
        merge(model)


if __name__ == "__main__":
    main()
