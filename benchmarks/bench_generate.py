"""Sampling on a CPU: which way of calling `generate` is fastest for a GRPO step's batch?

The batch is the demo's: 2 prompts (CA's system prompt + a task) x 4 samples, 64 new tokens,
temperature 1, on SmolLM2-135M-Instruct wrapped in a LoRA adapter shaped as the demo's (as the
trainer samples; its B matrices non-zero, as after training). Variants, each warmed up once,
then timed in turn, `--repeats` rounds (so a machine that slows down or speeds up during the
run affects every variant alike):

- `plain`: `generate` on the 8 left-padded rows (every row prefills its prompt);
- `shared-prefill`: each distinct prompt prefilled once, a cache that grows in place and
  decoding's products taken the way measured fastest here (`dynalign_hf.sampling.generate_shared`
  with `products="auto"`, what the trainer uses);
- `shared-prefill-multinomial`: the same with transformers' own token draw (`torch.multinomial`)
  instead of the same race from vectorised uniforms (`dynalign_hf.decoding`);
- `shared-prefill-concat`: the same with transformers' concatenating cache (copied per token);
- `shared-prefill-unmerged`: the same with the LoRA adapter's own forward (two small products
  per layer) instead of its weights merged for the call (`dynalign_hf.merged`);
- `shared-prefill-linear`, `-weight-first`, `-packed`: the same with every decoding product in
  torch's own order (x @ W.T), every one weight first ((W @ x.T).T), or the output layer's
  through a oneDNN-packed weight (`dynalign_hf.skinny`);
- `static-cache`: `cache_implementation="static"` (fixed-shape cache);
- `compiled`: static cache plus `torch.compile` of the forward pass;
- `one-thread`: shared prefill with `torch.set_num_threads(1)` (decoding is memory-bound).

    .venv/bin/python benchmarks/bench_generate.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any
from unittest.mock import patch


def demo_sampling_batch(model: Any, tokenizer: Any, value: Any) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of a demo GRPO step's sampling: the value's first 2 prompts
    after its system prompt, left-padded, each repeated for 4 samples."""
    from dynalign_hf.textgen import _left_padded, render

    system = value.system_prompt.strip()
    texts = [
        render(tokenizer, [{"role": "system", "content": system}, {"role": "user", "content": p.prompt}])
        for p in value.prompts[:2]
    ]
    batch = _left_padded(tokenizer, texts, model.device)
    return batch["input_ids"].repeat_interleave(4, 0), batch["attention_mask"].repeat_interleave(4, 0)


def main() -> None:
    """Time each variant and print one JSON line each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument(
        "--variants",
        default="plain,shared-prefill,shared-prefill-multinomial,shared-prefill-unmerged,shared-prefill-linear,"
        "shared-prefill-weight-first,shared-prefill-packed,shared-prefill-concat,static-cache,one-thread,compiled",
    )
    args = parser.parse_args()

    import torch

    from dynalign.plugins import load_registry
    from dynalign_hf.backend import HFChatModel
    from dynalign_hf.sampling import generate_shared
    from dynalign_hf.testing import trained_looking_lora

    value = load_registry().get("value", "ca").obj
    model, tokenizer = HFChatModel().loaded()
    model = trained_looking_lora(model)  # a fresh adapter (B = 0) would add nothing to the logits
    ids, mask = demo_sampling_batch(model, tokenizer, value)
    settings = {
        "max_new_tokens": args.tokens,
        "min_new_tokens": args.tokens,  # every variant makes the same number of tokens
        "do_sample": True,
        "temperature": 1.0,
        "top_k": None,
        "pad_token_id": tokenizer.pad_token_id,
    }

    def run(variant: str) -> None:
        with torch.no_grad():
            if variant == "plain":
                model.generate(input_ids=ids, attention_mask=mask, **settings)
            elif variant in ("shared-prefill", "one-thread"):
                generate_shared(model, ids, mask, **settings)
            elif variant == "shared-prefill-multinomial":
                generate_shared(model, ids, mask, sampler="multinomial", **settings)
            elif variant == "shared-prefill-concat":
                generate_shared(model, ids, mask, preallocate_cache=False, **settings)
            elif variant == "shared-prefill-unmerged":
                with patch("dynalign_hf.merged._lora_linear_class", lambda: None):  # finds no LoRA layer
                    generate_shared(model, ids, mask, **settings)
            elif variant.startswith("shared-prefill-"):  # one way for every decoding product
                way = variant.removeprefix("shared-prefill-").replace("linear", "torch")
                generate_shared(model, ids, mask, products=way, **settings)
            else:  # static-cache, and compiled (the same call; `timed` swaps in the compiled forward)
                model.generate(input_ids=ids, attention_mask=mask, cache_implementation="static", **settings)

    threads = torch.get_num_threads()
    variants = args.variants.split(",")
    warmups: dict[str, float] = {}
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    inner = model.get_base_model()
    compiled = torch.compile(inner.forward, dynamic=False) if "compiled" in variants else None

    def timed(variant: str) -> float:
        torch.set_num_threads(1 if variant == "one-thread" else threads)
        if variant == "compiled":
            inner.forward = compiled
        elif "forward" in vars(inner):
            del inner.forward  # the class's own forward for every other variant
        started = time.perf_counter()
        run(variant)
        return time.perf_counter() - started

    for variant in variants:
        try:
            warmups[variant] = timed(variant)  # compiles, for the compiled variant
        except Exception as exc:  # a variant this stack cannot run is reported, not fatal
            print(json.dumps({"variant": variant, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}), flush=True)
    for _ in range(args.repeats):
        for variant in warmups:
            times[variant].append(timed(variant))
    for variant in warmups:
        median = statistics.median(times[variant])
        print(
            json.dumps(
                {
                    "variant": variant,
                    "rows": int(ids.shape[0]),
                    "prompt_tokens": int(ids.shape[1]),
                    "new_tokens": args.tokens,
                    "warmup_s": round(warmups[variant], 2),
                    "median_s": round(median, 2),
                    "tokens_per_s": round(ids.shape[0] * args.tokens / median, 1),
                    "times": [round(t, 2) for t in times[variant]],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
