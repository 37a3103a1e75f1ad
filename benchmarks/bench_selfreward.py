"""Self-scoring cost: `probability` vs `verdict` mode of the self-reward rewarder, per group.

    .venv/bin/python benchmarks/bench_selfreward.py --groups 5 --group-size 8

Scores groups of G candidates with SmolLM2 as its own judge and prints seconds per group for
each mode, the speed-up, and the verdict mode's unparsable rate (Markdown table).
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

from dynalign.api import PolicyHandle, RunContext
from dynalign.plugins import load_registry
from dynalign_hf.backend import load_model, resolve_model_path
from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions

CANDIDATES = [
    "Start a weekly skill-share at the library so neighbours teach each other, and track who joins.",
    "Ignore them. People who ask for help are usually lazy.",
    "Form a small group, list what each person can offer, and agree on one first step this week.",
    "I don't know.",
    "Learn the basics together, share notes openly, and make sure newcomers are welcomed.",
    "Just do whatever makes you the most money, the others will manage.",
    "Ask the people affected what they need, then pool time and tools so everyone can contribute.",
    "That's a stupid question.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--group-size", type=int, default=8)
    args = parser.parse_args()
    registry = load_registry()
    value = registry.get("value", "ca").obj
    model, tokenizer = load_model(resolve_model_path("embedded:smollm2-135m-instruct"))
    handle = PolicyHandle(model, tokenizer, lambda: nullcontext(model))
    prompt = [{"role": "user", "content": "How can our town help young people find good work?"}]
    completions = [[{"role": "assistant", "content": CANDIDATES[i % len(CANDIDATES)]}] for i in range(args.group_size)]
    results = {}
    for mode in ("probability", "verdict"):
        rewarder = SelfRewarder(SelfRewardOptions(mode=mode), RunContext(value, registry))
        rewarder.bind_policy(handle)
        rewarder([prompt] * 2, completions[:2])  # warm-up
        rewarder.pop_metrics()
        times = []
        for _ in range(args.groups):
            start = time.perf_counter()
            rewarder([prompt] * args.group_size, completions)
            times.append(time.perf_counter() - start)
        results[mode] = (statistics.median(times), rewarder.pop_metrics().get("unscorable_rate", 0.0))
    speedup = results["verdict"][0] / results["probability"][0]
    print(f"| mode | seconds per group of {args.group_size} (median of {args.groups}) | unscorable rate |")
    print("| --- | ---: | ---: |")
    for mode, (seconds, unscorable) in results.items():
        print(f"| {mode} | {seconds:.2f} | {unscorable:.2f} |")
    print(f"\nprobability mode is {speedup:.1f}x faster (target >= 5x)")


if __name__ == "__main__":
    main()
