"""Scoring after a long shared prefix on a CPU: the prefix's cache copied per row, or attended
apart (`dynalign_hf.cascade`)?

Three no-grad passes of SmolLM2-135M-Instruct over CA's 64 calibration pairs (128 answers), as
`auto` and judge-check run them:

- `judge`: the probability judge (882 tokens of rubric every judged answer shares; only the
  next token's distribution is needed);
- `contrast`: the answers' log-probabilities after the value's system prompt (174 shared tokens);
- `teacher`: the same after a teacher context with `--exemplars` exemplar answers (issue 17's
  longer context).

Each pass runs both ways in one process, alternating `--repeats` rounds after a warm-up, so a
machine that speeds up or slows down affects both alike; the largest difference between the
two ways' numbers is printed too (float rounding only). One JSON line per pass and way.

    .venv/bin/python benchmarks/bench_prefix_attention.py --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any
from unittest.mock import patch

WAYS = ("copied", "apart")


def passes(handle: Any, value: Any, exemplars: int) -> dict[str, tuple[Callable[[], list[Any]], list[Any]]]:
    """Each pass: a call that returns its numbers (no result caching: the live model), and the
    conversations it scores after."""
    from dynalign.api import SCORE_PREFIX, Teacher, pointwise_messages, score_choices, with_system

    pairs = value.choosing_pairs()
    judged = [pointwise_messages(value, p.prompt, a) for p in pairs for a in (p.better, p.worse)]
    turns = [[{"role": "user", "content": p.prompt}] for p in pairs for _ in range(2)]
    answers = [a for p in pairs for a in (p.better, p.worse)]
    teacher = value.with_teacher(Teacher(exemplars=exemplars)).teacher_prompt()
    choices = score_choices(value.score_min, value.score_max)

    def likelihoods(system: str) -> tuple[Callable[[], list[Any]], list[Any]]:
        conversations = [with_system(t, system) for t in turns]
        return (lambda: handle.completion_logprobs(conversations, answers)), conversations

    return {
        "judge": ((lambda: handle.next_token_probs(judged, choices, SCORE_PREFIX)), judged),
        "contrast": likelihoods(value.teacher_prompt()),
        "teacher": likelihoods(teacher),
    }


def flat(numbers: list[Any]) -> list[float]:
    """Every number of a pass's result, in order."""
    out: list[float] = []
    for item in numbers:
        out.extend(item.values() if isinstance(item, dict) else item)
    return out


def main() -> None:
    """Time each pass both ways and print one JSON line each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--exemplars", type=int, default=4)
    parser.add_argument("--passes", default="judge,contrast,teacher")
    args = parser.parse_args()

    from dynalign.plugins import load_registry
    from dynalign_hf import cascade
    from dynalign_hf.backend import HFChatModel
    from dynalign_hf.prefix import common_prefix_length
    from dynalign_hf.textgen import render

    value = load_registry().get("value", "ca").obj
    policy = HFChatModel()
    policy.loaded()
    handle = policy.policy_handle()
    tokenizer = handle.tokenizer
    supports = cascade.supports
    for name, (run, conversations) in passes(handle, value, args.exemplars).items():
        if name not in args.passes.split(","):
            continue
        rows = [tokenizer(render(tokenizer, c), add_special_tokens=False)["input_ids"] for c in conversations]
        seconds: dict[str, list[float]] = {way: [] for way in WAYS}
        numbers: dict[str, list[float]] = {}
        for round_index in range(args.repeats + 1):  # round 0 warms up
            for way in WAYS:
                allowed = supports if way == "apart" else (lambda model: False)
                with patch.object(cascade, "supports", allowed):
                    started = time.perf_counter()
                    numbers[way] = flat(run())
                    if round_index:
                        seconds[way].append(time.perf_counter() - started)
        difference = max(abs(a - b) for a, b in zip(numbers["copied"], numbers["apart"]))
        for way in WAYS:
            row = {
                "pass": name,
                "way": way,
                "median_s": round(statistics.median(seconds[way]), 2),
                "seconds": [round(s, 2) for s in seconds[way]],
                "shared_prefix_tokens": common_prefix_length(rows),
                "mean_row_tokens": round(statistics.fmean(len(r) for r in rows), 1),
                "max_difference": difference,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
