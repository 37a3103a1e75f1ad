"""Judge throughput and negotiation cost against the local fake server (fixed latency).

    .venv/bin/python benchmarks/bench_judge.py [--latency 0.1] [--out benchmarks/results/judge.md]

Judge: pointwise, K=1, no log-probabilities, cache off, `openai` backend (real SDK) at
concurrency 1, 8 and 32. Negotiation: 2 and 4 agents that never agree (so all T rounds run:
the worst case), T = 1..3, `openai` backend at concurrency 8.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakeserver import FakeServer  # noqa: E402

from dynalign.api import RunContext  # noqa: E402
from dynalign.plugins import load_registry  # noqa: E402


def model_ref(server: FakeServer, concurrency: int) -> dict:
    options = {"model": "fake-judge", "base_url": server.openai_url, "api_key_env": "BENCH_KEY"}
    return {"backend": "openai", "options": {**options, "concurrency": concurrency}}


def bench_judge(server: FakeServer, context: RunContext, concurrency: int, n: int) -> tuple[float, int]:
    judge = context.build(
        "rewarder",
        "judge",
        {"model": model_ref(server, concurrency), "logprobs": "never", "cache": False},
        "bench",
    )
    judge(["warm-up"], ["warm-up"])  # SDK import and client creation are not throughput
    before = server.count()
    started = time.perf_counter()
    scores = judge([f"prompt {i}" for i in range(n)], [f"answer {i}" for i in range(n)])
    seconds = time.perf_counter() - started
    assert all(s == 3.0 for s in scores)
    return n / seconds, server.count() - before


def bench_negotiation(server: FakeServer, context: RunContext, agents: int, rounds: int, n: int) -> tuple[float, float]:
    personas = [{"name": f"agent{k}", "persona": f"Perspective {k}."} for k in range(agents)]
    rewarder = context.build(
        "rewarder",
        "negotiation",
        {"model": model_ref(server, 8), "agents": personas, "rounds": rounds, "tolerance": 0.0},
        "bench",
    )
    before = server.count()
    started = time.perf_counter()
    rewarder([f"prompt {i}" for i in range(n)], [f"answer {i}" for i in range(n)])
    seconds = time.perf_counter() - started
    return (server.count() - before) / n, seconds / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1, help="Server seconds per request.")
    parser.add_argument("--judgments", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/judge.md")
    args = parser.parse_args()
    os.environ["BENCH_KEY"] = "test-key"
    registry = load_registry()
    context = RunContext(value=registry.get("value", "ca").obj, registry=registry)
    lines = [
        "## Judge and negotiation (API backends against the local fake server)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_judge.py --latency {args.latency} --judgments {args.judgments} "
        f"--candidates {args.candidates}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}; "
        f"the server sleeps {args.latency:g} s per request (stdlib threaded HTTP server on 127.0.0.1); "
        "clients are the real `openai` SDK's async client.",
        "",
        f"### Judge throughput (pointwise, K=1, cache off, {args.judgments} judgments)",
        "",
        "| concurrency | judgments/s | requests | ideal judgments/s |",
        "| ---: | ---: | ---: | ---: |",
    ]
    with FakeServer(latency=args.latency) as server:
        server.reply = lambda messages, model: "Reasonable.\nScore: 3"
        for concurrency in (1, 8, 32):
            rate, requests = bench_judge(server, context, concurrency, args.judgments)
            lines.append(f"| {concurrency} | {rate:.1f} | {requests} | {concurrency / args.latency:.0f} |")
            print(lines[-1], flush=True)
        lines += [
            "",
            f"### Negotiation cost (agents never agree: all T rounds run; {args.candidates} candidates, concurrency 8)",
            "",
            "| agents | T | calls/candidate | seconds/candidate |",
            "| ---: | ---: | ---: | ---: |",
        ]
        server.reply = lambda messages, model: "Score: 5" if "You are agent0" in messages[0]["content"] else "Score: 0"
        for agents in (2, 4):
            for rounds in (1, 2, 3):
                calls, seconds = bench_negotiation(server, context, agents, rounds, args.candidates)
                lines.append(f"| {agents} | {rounds} | {calls:.1f} | {seconds:.3f} |")
                print(lines[-1], flush=True)
    lines += [
        "",
        "Calls per candidate are agents x rounds used (plus one with a mediator); candidates whose agents agree "
        "within the tolerance stop early. Requests of one round run concurrently, rounds run in sequence, so "
        "seconds per candidate grow with T, not with agents, until the concurrency limit is reached.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
