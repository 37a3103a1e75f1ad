"""The probability judge's scoring pass on a CPU, before and after issue 20 round 11, in one process.

Two comparisons on SmolLM2-135M-Instruct, each way timed in turn for `--repeats` rounds after a
warm-up (so a machine that speeds up or slows down affects both alike), with the largest
difference between the two ways' probabilities (float rounding only):

- `pairs`: `auto`'s judge pass over CA's 64 calibration pairs (128 answers, an 882-token rubric
  they all share): every prompt after the rubric run whole (`whole`, the code before), or each
  pair's request run once and each answer's own tokens after it (`request-shared`,
  `dynalign_hf.prefix.split_at_siblings`);
- `group`: a GRPO group as the paper's self-reward scores it, 8 answers to one request judged by
  the live policy, a LoRA adapter on every linear layer (B non-zero, as after training): its
  adapters' own forward (`adapters`, the code before) or merged into its weights for the call
  (`merged`, the handle's scoring calls; the merge is timed with the pass).

    .venv/bin/python benchmarks/bench_self_judge.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any
from unittest.mock import patch


def timed(ways: dict[str, Callable[[], list[list[float]]]], repeats: int) -> dict[str, Any]:
    """Each way's medians and times over `repeats` alternating rounds, and how far apart their numbers are."""
    numbers = {name: run() for name, run in ways.items()}  # the warm-up
    first, second = numbers.values()
    differs = max(abs(a - b) for row, other in zip(first, second) for a, b in zip(row, other))
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, run in ways.items():
            started = time.perf_counter()
            run()
            times[name].append(round(time.perf_counter() - started, 2))
    medians = {name: round(statistics.median(seconds), 2) for name, seconds in times.items()}
    return {"median_s": medians, "times": times, "max_probability_difference": differs}


def main() -> None:
    """Run both comparisons and print one JSON line each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="pairs,group")
    args = parser.parse_args()

    import torch

    from dynalign.api import SCORE_PREFIX, pointwise_messages, score_choices
    from dynalign.plugins import load_registry
    from dynalign_hf import merged
    from dynalign_hf.backend import HFChatModel
    from dynalign_hf.handle import HFPolicyHandle
    from dynalign_hf.prefix import forward_shared
    from dynalign_hf.testing import trained_looking_lora
    from dynalign_hf.textgen import choice_token_ids, next_token_probs, render

    value = load_registry().get("value", "ca").obj
    model, tokenizer = HFChatModel().loaded()
    model.eval()
    pairs = value.choosing_pairs()
    choices = score_choices(value.score_min, value.score_max)
    if "pairs" in args.parts.split(","):
        texts = [
            render(tokenizer, pointwise_messages(value, p.prompt, a), SCORE_PREFIX)
            for p in pairs
            for a in (p.better, p.worse)
        ]
        choice_ids = choice_token_ids(tokenizer, choices)

        def whole() -> list[list[float]]:
            lists = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
            empty: list[list[int]] = [[] for _ in lists]

            def reduce(row: int, logits: Any) -> list[float]:
                return torch.softmax(logits[-1], dim=-1)[choice_ids].tolist()

            return forward_shared(model, lists, empty, reduce, pad_id=tokenizer.pad_token_id, batch_size=8)

        def request_shared() -> list[list[float]]:
            return [list(p.values()) for p in next_token_probs(model, tokenizer, texts, choices, 8)]

        result = timed({"whole": whole, "request-shared": request_shared}, args.repeats)
        print(json.dumps({"part": "pairs", "answers": len(texts), **result}), flush=True)
    if "group" in args.parts.split(","):
        policy = trained_looking_lora(model)
        policy.eval()
        handle = HFPolicyHandle(policy, tokenizer, batch_size=8)
        answers = [a for p in pairs[:4] for a in (p.better, p.worse)]
        judged = [pointwise_messages(value, pairs[0].prompt, a) for a in answers]

        def adapters() -> list[list[float]]:
            with patch.object(merged, "_lora_linear_class", lambda: None):  # finds no LoRA layer to merge
                return [list(p.values()) for p in handle.next_token_probs(judged, choices, SCORE_PREFIX)]

        def merged_for_the_call() -> list[list[float]]:
            return [list(p.values()) for p in handle.next_token_probs(judged, choices, SCORE_PREFIX)]

        result = timed({"adapters": adapters, "merged": merged_for_the_call}, args.repeats)
        print(json.dumps({"part": "group", "answers": len(judged), **result}), flush=True)


if __name__ == "__main__":
    main()
