"""Benchmarks of the `agents` prompt generator; writes benchmarks/results/prompts.md.

    .venv/bin/python benchmarks/bench_prompts.py            # all three parts
    .venv/bin/python benchmarks/bench_prompts.py --skip-model

1. ROUGE-L filter cost per accepted prompt at 1,000 and 5,000 accepted prompts (synthetic
   Zipf-distributed English-like prompts, 10% of candidates near-copies of accepted ones),
   against brute-force rouge-score scoring of every accepted prompt.
2. Concurrency: the whole pipeline (and the bare `openai` backend) against a local
   OpenAI-compatible server (tests/fakeserver.py) answering after a fixed delay, at
   concurrency 1 vs 8.
3. Local SmolLM2-135M (embedded, CPU): accepted prompts per minute, every role local.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

FUNCTION = "i my the a to and of in for with how can we our is it on what should do about".split()


def synthetic_stream(seed: int = 0):
    """Endless candidate prompts: Zipf words over a 3,000-word vocabulary, 10% near-copies."""
    rng = random.Random(seed)
    vocab = FUNCTION + [f"w{i}" for i in range(3000)]
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    made: list[str] = []
    while True:
        if made and rng.random() < 0.1:
            words = rng.choice(made).split()
            words[rng.randrange(len(words))] = rng.choice(vocab)
            text = " ".join(words)
        else:
            text = " ".join(rng.choices(vocab, weights, k=rng.randint(12, 45)))
        made.append(text)
        yield text


def bench_rouge(targets: tuple[int, ...] = (1000, 5000)) -> list[str]:
    from rouge_score.rouge_scorer import RougeScorer

    from dynalign_agents.filters import CandidateFilter

    lines = [
        "| accepted | candidates | total s | ms / accepted (mean) | ms / candidate at the end | exact LCS checks | "
        "brute force ms / candidate at the end |",
        "|---|---|---|---|---|---|---|",
    ]
    scorer = RougeScorer(["rougeL"])
    for target in targets:
        filt, stream, seen = CandidateFilter(1, 10_000, 0.7), synthetic_stream(), 0
        started = time.perf_counter()
        while len(filt.rouge) < target:
            text, seen = next(stream), seen + 1
            if filt.check(text):
                filt.accept(text)
        total = time.perf_counter() - started
        probe = [next(stream) for _ in range(50)]
        t0 = time.perf_counter()
        for text in probe:
            filt.reason(text)
        tail = (time.perf_counter() - t0) / len(probe) * 1000
        accepted = filt.rouge._texts
        t0 = time.perf_counter()
        for text in probe[:3]:
            any(scorer.score(other, text)["rougeL"].fmeasure >= 0.7 for other in accepted)
        brute = (time.perf_counter() - t0) / 3 * 1000
        lines.append(
            f"| {target} | {seen} | {total:.1f} | {total / target * 1000:.2f} | {tail:.2f} | "
            f"{filt.rouge.exact_checks} | {brute:.0f} |"
        )
        print(lines[-1], flush=True)
    return lines


def _fake_agents_reply(messages, model):
    text = messages[-1]["content"]
    rng = random.Random(text)
    words = [f"w{rng.randrange(5000)}" for _ in range(20)]
    if "distinct goals" in text:
        return "\n".join(f"{i}. {' '.join(words[i * 4 : i * 4 + 4])}" for i in range(1, 4))
    if text.startswith("Goal: "):
        return "How can I " + " ".join(words) + "?"
    if "Judge its clarity" in text:
        return "Score: 5\nReason: fine"
    return re.sub(r"\s+", " ", text)[:200]


def bench_concurrency(delay: float = 0.2, n: int = 48) -> list[str]:
    from fakeserver import FakeServer

    from dynalign.api import GenerationParams, RunContext
    from dynalign.plugins import load_registry

    os.environ["BENCH_FAKE_KEY"] = "test-key"
    registry = load_registry()
    value = registry.get("value", "ca").obj
    lines = [
        f"Server delay {delay * 1000:.0f} ms per request; pipeline n = {n}, no cache folder (every call fresh).",
        "",
        "| what | concurrency | requests | wall s | requests / s | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    base: dict[str, float] = {}
    with FakeServer(latency=delay, models=("fake-agent",)) as server:
        server.reply = _fake_agents_reply
        for what in ("backend chat(64 conversations)", "agents pipeline"):
            for concurrency in (1, 8):
                ref = {
                    "backend": "openai",
                    "options": {
                        "model": "fake-agent",
                        "base_url": server.openai_url,
                        "api_key_env": "BENCH_FAKE_KEY",
                        "concurrency": concurrency,
                    },
                }
                context = RunContext(value=value, registry=registry, seed=0)
                before = server.count("/chat/completions")
                started = time.perf_counter()
                if what.startswith("backend"):
                    model = context.build_model(ref)
                    convs = [[{"role": "user", "content": f"Goal: {i}"}] for i in range(64)]
                    model.chat(convs, GenerationParams(max_new_tokens=32))
                else:
                    options = {"n": n, "held_out": 8, "model": ref, "progress": False}
                    generator = context.build("prompt_generator", "agents", options, "prompts.options")
                    generator.generate_to(value, None)
                wall = time.perf_counter() - started
                requests = server.count("/chat/completions") - before
                rate = requests / wall
                base.setdefault(what, rate)
                lines.append(
                    f"| {what} | {concurrency} | {requests} | {wall:.2f} | {rate:.1f} | {rate / base[what]:.2f}x |"
                )
                print(lines[-1], flush=True)
    return lines


def bench_smollm2(n: int = 4) -> list[str]:
    import tempfile

    from dynalign.api import RunContext
    from dynalign.plugins import load_registry

    registry = load_registry()
    value = registry.get("value", "ca").obj
    context = RunContext(value=value, registry=registry, seed=0)
    options = {"n": n, "held_out": 1, "min_score": 2, "goals_per_call": 1, "max_new_tokens": 96, "progress": False}
    generator = context.build("prompt_generator", "agents", options, "prompts.options")
    agents = generator.build_agents(None)
    agents["task"].model.loaded()  # load (and convert, once) before timing
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        generator.generate_to(value, Path(folder))
        wall = time.perf_counter() - started
    summary = generator.last_summary
    calls = sum(summary["calls"].values())
    return [
        "| accepted | model calls | wall s | prompts / minute | rejections |",
        "|---|---|---|---|---|",
        f"| {summary['accepted']} | {calls} | {wall:.1f} | {summary['accepted'] / wall * 60:.1f} | "
        f"{summary['rejections']} |",
        "",
        f"Options: `{options}` (a 135M critic cannot discriminate, so min_score is lowered; 96 new tokens per call).",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-model", action="store_true", help="Skip the SmolLM2 part.")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results" / "prompts.md"
    sections = [
        "# Prompt generation benchmarks (`agents`)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_prompts.py{' --skip-model' if args.skip_model else ''}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), Python "
        f"{platform.python_version()}.",
        "",
        "## ROUGE-L filter cost per accepted prompt",
        *bench_rouge(),
        "",
        "## Concurrency against a local OpenAI-compatible server",
        *bench_concurrency(),
    ]
    if not args.skip_model:
        sections += ["", "## Local SmolLM2-135M-Instruct (CPU), every role", *bench_smollm2()]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(sections) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
