"""GRPO with HF generation vs vLLM colocate generation: step time split, tokens/s, memory, metrics.

    scripts/setup-env --vllm
    .venv-vllm/bin/python benchmarks/bench_vllm.py --steps 4 --out /tmp/bench-vllm.json
    .venv-vllm/bin/python benchmarks/bench_vllm.py --steps 8 --eval --out /tmp/bench-vllm-eval.json

Both runs are `dynalign run` on SmolLM2-135M (LoRA, G=4, self-reward `probability`), same
config, same seed, one after the other in the vLLM environment (so both use the same
transformers); only `trl.use_vllm` differs. Per-step times are dynalign's own metrics
(`time/generation`, `time/scoring`, `time/value_context`, `time/step`); the first step (vLLM's
engine start, first weight sync) is reported apart. Tokens/s = completion tokens sampled per
second of `time/generation`. Memory is the run's peak resident set (GNU time's %M).
`--eval` adds the efficacy part of the eval stage to both runs (the same HF code scores both
trained models: implicit reward on CA's 64 held-out pairs, gap closed on the run's held-out
prompts), so what each engine's samples taught is compared after the same steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
value = "ca"
seed = {seed}
[prompts]
generator = "file"
options = {{ n = 24, held_out = 4 }}
[[rewarders]]
name = "self-reward"
options = {{ mode = "probability" }}
[optimizer]
name = "grpo"
options = {{ num_generations = 4, max_steps = {steps}, max_completion_length = {tokens}, save_steps = 1000, \
trl = {{ {trl} }} }}
{stages}"""
VLLM = 'use_vllm = true, vllm_mode = "colocate", vllm_max_model_length = 2048'
EFFICACY_ONLY = """[[stages]]
name = "eval"
options = { judge_check = false, ifeval = false, ifbench = false, safety = false, limit = 1, max_new_tokens = 8 }
"""
SPLIT = ("time/generation", "time/scoring", "time/value_context", "time/step")


def run(work: Path, name: str, trl: str, steps: int, tokens: int, seed: int, evaluate: bool = False) -> dict:
    config = work / f"{name}.toml"
    stages = EFFICACY_ONLY if evaluate else ""
    config.write_text(CONFIG.format(seed=seed, steps=steps, tokens=tokens, trl=trl, stages=stages))
    began = time.perf_counter()
    done = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "MAXRSS_KB %M",
            sys.executable,
            "-m",
            "dynalign.cli",
            "run",
            str(config),
            "--out",
            str(work / name),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")},
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"bench_vllm: the {name} run failed:\n{done.stderr[-3000:]}")
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("MAXRSS_KB"))
    rows = [json.loads(line) for line in (work / name / "metrics.jsonl").read_text().splitlines()]
    later = rows[1:] or rows
    result = {
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(peak / 1e6, 2),
        "first_step_s": rows[0]["time/step"],
        "steps": len(rows),
    }
    for key in SPLIT:
        result[f"{key} (median after the first)"] = round(statistics.median(r[key] for r in later), 2)
    sampled = [r["completion_length"] * 4 / r["time/generation"] for r in later]
    result["tokens_per_s"] = round(statistics.median(sampled), 1)
    for key in ("reward_mean", "kl", "loss", "completion_length", "context/sampler_ratio"):
        result[f"{key} by step"] = [round(r[key], 4) if key in r else None for r in rows]
    if evaluate:
        result |= _efficacy(json.loads((work / name / "eval" / "results.json").read_text())["efficacy"])
    return result


def _efficacy(efficacy: dict) -> dict:
    """Held-out implicit reward (per token, likelihood-adjusted) and gap closed, with their intervals."""
    pairs, gap = efficacy["pairs"], efficacy["gap"]
    shown = {}
    for key in ("implicit_reward_per_token", "implicit_reward_adjusted"):
        shown[key] = {"accuracy": round(pairs[key]["accuracy"], 3), "ci95": [round(x, 3) for x in pairs[key]["ci95"]]}
    shown["gap_closed"] = {"value": round(gap["gap_closed"], 3), "ci95": [round(x, 3) for x in gap["ci95"]]}
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=48, help="max_completion_length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval", action="store_true", help="efficacy (held-out pairs, gap closed) after each run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        results = {
            "hf": run(work, "hf", "", args.steps, args.tokens, args.seed, args.eval),
            "vllm": run(work, "vllm", VLLM, args.steps, args.tokens, args.seed, args.eval),
        }
    text = json.dumps({"args": vars(args) | {"out": str(args.out)}, **results}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
