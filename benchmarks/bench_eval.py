"""Wall time of `dynalign eval` on this machine: N held-out prompts (CA's bundled prompts)
plus an IFEval subset, with the real SmolLM2-135M-Instruct as base, aligned and judge.

No trained model is needed: the aligned model is the base itself (so the win rate is 50%
by construction; only the time is measured). Writes a markdown row to stdout.

    .venv/bin/python benchmarks/bench_eval.py --prompts 50 --ifeval 20 --max-new-tokens 128
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from dynalign.api import PromptRecord, PromptSet, RunContext
from dynalign.plugins import load_registry
from dynalign.runconfig import RunConfig
from dynalign.rundir import RunDirectory
from dynalign_eval.evaluate import evaluate
from dynalign_eval.options import EvalOptions
from dynalign_hf.backend import HFChatModel

IFEVAL = Path(__file__).resolve().parents[1] / "../shared/data/ifeval/input_data.jsonl"


def main() -> None:
    """Time one eval and print a markdown table row."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--ifeval", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()
    registry = load_registry()
    value = registry.get("value", "ca").obj
    base = HFChatModel()
    folder = base.pretrained_path()
    with tempfile.TemporaryDirectory() as scratch:
        config = RunConfig(policy={"backend": "hf", "options": {"model": folder}}).model_dump(mode="json")
        run = RunDirectory.prepare(Path(scratch) / "run", config, resume=False)
        records = [PromptRecord(id=f"v{i}", prompt=p.prompt, pillar=p.pillar) for i, p in enumerate(value.prompts)]
        run.write_prompts(PromptSet(train=records[:1], held_out=records[1 : 1 + args.prompts]))
        options = EvalOptions(
            limit=args.prompts,
            max_new_tokens=args.max_new_tokens,
            ifeval_path=str(IFEVAL) if args.ifeval else None,
            ifeval_limit=args.ifeval or None,
            ifeval_max_new_tokens=args.max_new_tokens,
        )
        context = RunContext(value=value, registry=registry)
        started = time.time()
        results = evaluate(
            run, context, base, base, options, lambda line: print(f"{time.time() - started:7.1f} s  {line}", flush=True)
        )
        total = time.time() - started
    check = results["judge_check"]
    print(
        f"| {results['win_rate']['n']} held-out + {args.ifeval} IFEval | {args.max_new_tokens} | {total:.0f} s | "
        f"judge-check pointwise {check['pointwise_accuracy']:.2f}, pairwise {check['pairwise_accuracy']:.2f} |"
    )
    print(json.dumps({k: results["ifeval"]["base"][k] for k in ("prompt_level_strict_acc", "inst_level_strict_acc")}))


if __name__ == "__main__":
    main()
