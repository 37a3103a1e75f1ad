"""Scoring through a local vLLM server vs the `hf` backend: server start, probability-judge calls/s.

    scripts/setup-env --vllm
    .venv-vllm/bin/python benchmarks/bench_vllm_serve.py --items 32 --out /tmp/bench-vllm-serve.json

The server is `dynalign_api.vllm_server` (the tests' and the README's command: fp32, eager,
max model length 2048) serving the embedded SmolLM2-135M; the judge is the `openai` backend
with prefill, as in examples/configs/judge-vllm.toml. Each judge scores the same `--items`
(prompt, answer) rows with the CA rubric (pointwise probability judge: one next-token
distribution per row), once to warm up, then timed; the `hf` backend does the same in-process
(its shared-prefix cache included). Start = from launch to /health answering 200.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from dynalign.api import SCORE_PREFIX, expected_score, pointwise_messages, score_choices
from dynalign.plugins import load_registry
from dynalign_api.openai_backend import OpenAIChatModel
from dynalign_api.vllm_server import vllm_server
from dynalign_hf.backend import HFChatModel, resolve_model_path


def timed_scores(judge, value, rows) -> tuple[float, list[float | None]]:
    """Seconds for one pass over `rows` (after a warm-up pass) and the scores."""
    asked = [pointwise_messages(value, p, a) for p, a in rows]
    choices = score_choices(value.score_min, value.score_max)
    judge.next_token_probs(asked[:2], choices, SCORE_PREFIX)
    start = time.perf_counter()
    dists = judge.next_token_probs(asked, choices, SCORE_PREFIX)
    return time.perf_counter() - start, [expected_score(d) for d in dists]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    value = load_registry().get("value", "ca").obj
    pairs = [*value.calibration, *value.held_out]
    rows = [(p.prompt, answer) for p in pairs for answer in (p.better, p.worse)][: args.items]
    folder = resolve_model_path("embedded:smollm2-135m-instruct")
    os.environ.setdefault("VLLM_API_KEY", "bench")
    result: dict = {"items": len(rows), "concurrency": args.concurrency}

    start = time.perf_counter()
    hf = HFChatModel(HFChatModel.Options(model="embedded:smollm2-135m-instruct"))
    hf_seconds, hf_scores = timed_scores(hf, value, rows)
    result["hf"] = {"load_and_score_s": round(time.perf_counter() - start, 1), "score_s": round(hf_seconds, 2)}

    log = Path(tempfile.mkdtemp(prefix="bench-vllm-serve-")) / "server.log"
    start = time.perf_counter()
    with vllm_server(folder, "smollm2", log) as url:
        result["server_start_s"] = round(time.perf_counter() - start, 1)
        options = {"model": "smollm2", "base_url": url, "api_key_env": "VLLM_API_KEY", "prefill": True}
        server = OpenAIChatModel(OpenAIChatModel.Options(**options, concurrency=args.concurrency))
        server_seconds, server_scores = timed_scores(server, value, rows)
    result["server"] = {"score_s": round(server_seconds, 2)}
    for side, seconds in (("hf", hf_seconds), ("server", server_seconds)):
        result[side]["rows_per_s"] = round(len(rows) / seconds, 2)
    gaps = [abs(a - b) for a, b in zip(server_scores, hf_scores) if a is not None and b is not None]
    result["max_score_gap"] = max(gaps) if gaps else None
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
