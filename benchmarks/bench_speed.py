"""Where the demo's time goes, before and after a change, side by side on one machine.

Each part runs in a fresh child process with the real SmolLM2-135M-Instruct, one at a time:

- `auto`: self-reward auto measuring its three signals on CA's 64 calibration pairs (model
  load excluded), first with the measurement cache off, then again with it on;
- `steps`: the demo's GRPO recipe for N steps with the contrast signal auto picks (so no
  measurement), no stages: median step time, its parts, peak memory;
- `steps-g8`: the same with the paper's group shape, G = 8 samples of one prompt per step
  (the same 8 rows a step);
- `steps-judge`: the paper's self-reward, the live policy judging each of G = 8 samples of one
  prompt with a 0-5 score (`mode = "probability"`) instead of the contrast;
- `eval`: the demo's eval stage with the base model as the aligned one (only time is
  measured), cache off, then on;
- `eval-issue`: the same with the sections the demo's eval had when issue 20 was filed
  (efficacy, gap closed, the self-judged win rate; no IFBench or safety), which the code of
  44507cd runs too.

`--ab TREE` runs every part twice per round, alternating: once with the code of TREE (another
checkout of dynalign, put first on PYTHONPATH) and once with this checkout, and prints each
figure and the ratio this/TREE. `steps` takes each side's own demo recipe (its tree's
examples/configs/demo.toml: the training settings go with the code); `eval` runs this
checkout's eval options on both sides (the same work). Results go to benchmarks/results/speed.json.

    .venv/bin/python benchmarks/bench_speed.py --ab ../base --steps 4 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "speed.json"
DEMO = HERE.parent / "examples" / "configs" / "demo.toml"


def _context(run_dir: Path | None = None) -> tuple:
    try:
        from dynalign.api import RunContext
    except ImportError:  # the code of 44507cd, which the issue was filed on, had no public api module
        from dynalign.context import RunContext
    from dynalign.plugins import load_registry

    registry = load_registry()
    value = registry.get("value", "ca").obj
    return RunContext(value, registry, run_dir=run_dir, say=lambda line: None), value


def part_auto() -> dict:
    """Seconds to measure the three signals (the model is loaded first and not counted)."""
    from dynalign_hf.backend import HFChatModel
    from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions

    context, _ = _context()
    policy = HFChatModel()
    policy.loaded()
    started = time.perf_counter()
    rewarder = SelfRewarder(SelfRewardOptions(mode="auto"), context)
    rewarder.bind_policy(policy.policy_handle())
    seconds = time.perf_counter() - started
    measured = {k: round(v["accuracy"], 4) for k, v in rewarder.auto_report["measured"].items()}
    return {"seconds": seconds, "chosen": rewarder.auto_report["chosen"], "accuracy": measured}


def part_steps(steps: int, groups: str = "num_generations = 4, prompts_per_step = 2", mode: str = "contrast") -> dict:
    """A demo-recipe training run of `steps` steps (the self-reward `mode`, no stages), `groups`
    the group shape."""
    demo = Path(os.environ.get("BENCH_DEMO_CONFIG") or DEMO)  # the measured tree's recipe
    text = demo.read_text(encoding="utf-8").split("[[stages]]")[0]
    text = text.replace('options = { mode = "auto" }', f'options = {{ mode = "{mode}" }}')
    text = text.replace("max_steps = 14", f"max_steps = {steps}")
    demo_groups = "num_generations = 4, prompts_per_step = 2"
    if demo_groups not in text:  # the demo changed: never time another shape under this name
        sys.exit(f"bench_speed: {demo} no longer says '{demo_groups}'; update part_steps")
    text = text.replace(demo_groups, groups)
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "steps.toml"
        config.write_text(text, encoding="utf-8")
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dynalign.cli", "run", str(config), "--out", str(Path(scratch) / "run")],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        rows = [json.loads(line) for line in (Path(scratch) / "run" / "metrics.jsonl").read_text().splitlines()]
    parts = {k: statistics.median(r[k] for r in rows if k in r) for k in rows[0] if k.startswith("time/")}
    return {
        "seconds": seconds,
        "step_seconds": [r["seconds"] for r in rows],
        "median_step": statistics.median(r["seconds"] for r in rows[1:] or rows),  # the first step warms up
        "parts": parts,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6,
    }


# the demo's eval options when issue 20 was filed, and its later sections turned off where a tree has them
ISSUE_EVAL = {"max_new_tokens": 96, "ifeval_limit": 10, "ifeval_max_new_tokens": 128, "judge_check": False}
LATER_SECTIONS_OFF = {"ifbench": False, "safety": False}


def part_eval(sections: str = "demo") -> dict:
    """The demo's eval stage on base vs base (CA's held-out pairs and prompts); `sections`
    "issue" runs only what it ran when issue 20 was filed."""
    import tomllib

    try:
        from dynalign.api import PromptRecord, PromptSet
    except ImportError:  # 44507cd's layout
        from dynalign.interfaces import PromptRecord, PromptSet
    from dynalign.rundir import RunDirectory
    from dynalign_eval.evaluate import evaluate
    from dynalign_eval.options import EvalOptions
    from dynalign_hf.backend import HFChatModel

    options = tomllib.loads(DEMO.read_text(encoding="utf-8"))["stages"][0]["options"]
    if sections == "issue":
        known = EvalOptions.model_fields
        options = {**ISSUE_EVAL, **{k: v for k, v in LATER_SECTIONS_OFF.items() if k in known}}
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = RunDirectory.prepare(Path(scratch) / "run", {"bench": "eval"}, resume=False)
        context, value = _context(run_dir.root)
        prompts = [PromptRecord(id=f"p{i}", prompt=p.prompt) for i, p in enumerate(value.prompts)]
        run_dir.write_prompts(PromptSet(train=prompts[8:40], held_out=prompts[:8]))
        base = HFChatModel()
        base.loaded()
        started = time.perf_counter()
        results = evaluate(run_dir, context, base, base, EvalOptions(**options), say=lambda line: None)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "sections": results.get("section_seconds", {})}


def child(part: str, steps: int) -> dict:
    """Run one part in this process (called in a child)."""
    if part == "steps":
        return part_steps(steps)
    if part in ("steps-g8", "steps-judge"):
        mode = "probability" if part == "steps-judge" else "contrast"
        return part_steps(steps, "num_generations = 8, prompts_per_step = 1", mode)
    result = part_auto() if part == "auto" else part_eval("issue" if part == "eval-issue" else "demo")
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return result


def spawn(part: str, tree: Path | None, steps: int, cache: bool) -> dict:
    """One part in a fresh process, with TREE's code first on the path (None: this checkout)."""
    env = {**os.environ, "DYNALIGN_NO_CACHE": "" if cache else "1"}
    if tree is not None:
        paths = [tree / "core", tree / "plugins", tree / "values" / "ca" / "src"]
        env["PYTHONPATH"] = os.pathsep.join(str(p.resolve()) for p in paths)
        env["BENCH_DEMO_CONFIG"] = str((tree / "examples" / "configs" / "demo.toml").resolve())
    out = subprocess.run(
        [sys.executable, __file__, "--child", part, "--steps", str(steps)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the parts (A/B with --ab) and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ab", type=Path, help="another dynalign checkout to compare against")
    parser.add_argument("--parts", default="auto,steps,eval")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.steps)))
        return
    arms: list[tuple[str, Path | None]] = ([("before", args.ab)] if args.ab else []) + [("after", None)]
    results: dict = {"machine": os.uname().machine, "cpus": os.cpu_count(), "runs": []}
    for round_index in range(args.rounds):
        for part in args.parts.split(","):
            for arm, tree in arms:
                # the code before has no measurement cache: its second run would repeat the first
                cached = part in ("auto", "eval", "eval-issue") and tree is None
                for cache in (False, True) if cached else (False,):
                    result = spawn(part, tree, args.steps, cache)
                    row = {"round": round_index, "part": part, "arm": arm, "cache": cache, **result}
                    results["runs"].append(row)
                    print(json.dumps(row), flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
