"""Does the embedded model measurably align itself? Demo-sized runs per signal and seed.

For each self-signal (default: the contrast signal and the probability-mode judge) and seed,
runs `dynalign run` on the demo config with that signal, then measures:
(`placebo` trains with the `random-reward` control and no dense value credit: what training
alone does to the numbers, the baseline every signal has to beat; `placebo-dense` and
`contrast-sum-sequence-only` are the two ablations of the demo's recipe)
- the signal's accuracy on the value's calibration and held-out pairs (base model);
- efficacy before/after from eval/results.json: implicit-reward accuracy on the held-out pairs
  (per token and summed), unprompted preference accuracy of base and aligned, gap closed;
- style drift: mean greedy answer length (tokens) and clipped fraction, base vs aligned, on the
  held-out prompts; the training samples' clipped fraction, first vs last steps;
- IFEval prompt-level strict accuracy on `--ifeval-limit` prompts, base and each aligned model;
- wall time and peak memory of each run.
Runs already finished in --out are reused, so the benchmark can be stopped and continued.

    .venv/bin/python benchmarks/bench_efficacy.py --seeds 0,1,2 --ifeval-path ../shared/data/ifeval/input_data.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = {  # signal -> (rewarder, its options, optimizer options changed from the demo's)
    "contrast-sum": ("self-reward", {"mode": "contrast", "aggregation": "sum"}, {}),
    "contrast-mean": ("self-reward", {"mode": "contrast", "aggregation": "mean"}, {}),
    "probability": ("self-reward", {"mode": "probability"}, {}),
    # ablations: the sequence-level contrast without dense value credit, and dense credit alone
    "contrast-sum-sequence-only": ("self-reward", {"mode": "contrast"}, {"context_distillation": 0}),
    "placebo-dense": ("random-reward", {}, {}),
    # the control: training with scores that mean nothing, nothing else to learn from
    "placebo": ("random-reward", {}, {"context_distillation": 0}),
}


def toml_value(value: Any) -> str:
    """A TOML literal for a JSON-like value (enough for our configs)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def settings(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` arguments as options, each value read as the config's overrides read theirs."""
    from dynalign.config import override_value

    return {key: override_value(text) for key, _, text in (pair.partition("=") for pair in pairs)}


def write_config(base: dict[str, Any], signal: str, seed: int, args: argparse.Namespace, path: Path) -> None:
    """The demo config with the signal, the seed, the overrides, and IFEval left to the benchmark."""
    config = json.loads(json.dumps(base))
    config["seed"] = seed
    rewarder, options, optimizer = SIGNALS[signal]
    config["rewarders"] = [{"name": rewarder, "weight": 1.0, "options": options}]
    config["optimizer"]["options"].update({**settings(args.optimizer), **optimizer})  # a control stays one
    if args.steps:
        config["optimizer"]["options"]["max_steps"] = args.steps
    config["stages"] = [s for s in config.get("stages", []) if s["name"] != "report"]
    for stage in config["stages"]:
        if stage["name"] == "eval":
            stage.setdefault("options", {}).pop("ifeval_path", None)
            stage["options"].update({"efficacy_split": args.split, **settings(args.eval)})
    if args.teacher:
        config["teacher"] = settings(args.teacher)
    lines = [f"{k} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, dict | list)]
    for table in ("teacher", "policy", "prompts", "optimizer"):
        if table not in config:
            continue
        lines += [f"\n[{table}]"] + [f"{k} = {toml_value(v)}" for k, v in config[table].items()]
    for array in ("rewarders", "stages"):
        for item in config.get(array, []):
            lines += [f"\n[[{array}]]"] + [f"{k} = {toml_value(v)}" for k, v in item.items()]
    path.write_text("\n".join(lines) + "\n")


def train(args: argparse.Namespace, signal: str, seed: int) -> Path:
    """Run (or reuse) one demo-sized run; returns its folder."""
    run = args.out / f"{signal}-s{seed}"
    if (run / "eval" / "results.json").exists() and (run / "bench.json").exists():
        return run
    config = args.out / f"{signal}-s{seed}.toml"
    write_config(tomllib.loads(args.config.read_text()), signal, seed, args, config)
    command = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "dynalign.cli", "run", str(config)]
    command += ["--out", str(run)] + (["--resume"] if (run / "config.json").exists() else [])
    print(f"bench: {signal} seed {seed}", flush=True)
    done = subprocess.run(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        sys.exit(f"bench: run {run} failed:\n{done.stderr[-3000:]}")
    seconds, peak_kb = done.stderr.strip().splitlines()[-1].split()
    (run / "bench.json").write_text(json.dumps({"seconds": float(seconds), "peak_gb": int(peak_kb) / 1e6}))
    return run


def main() -> None:
    """Train every (signal, seed), then measure base and aligned models and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", default="contrast-sum,probability,placebo", help=f"Of: {', '.join(SIGNALS)}.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=None, help="Override the demo's max_steps.")
    parser.add_argument("--optimizer", action="append", default=[], metavar="KEY=VALUE", help="Optimizer option.")
    parser.add_argument("--eval", action="append", default=[], metavar="KEY=VALUE", help="Eval stage option.")
    parser.add_argument(
        "--teacher", action="append", default=[], metavar="KEY=VALUE", help="Teacher option, e.g. pick=[0,2]."
    )
    parser.add_argument(
        "--split",
        choices=("held_out", "calibration"),
        default="held_out",
        help="Measure efficacy on the held-out pairs (results), or on the calibration pairs (choosing settings).",
    )
    parser.add_argument("--config", type=Path, default=ROOT / "examples/configs/demo.toml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench-efficacy")
    parser.add_argument("--ifeval-path", default=os.environ.get("DYNALIGN_IFEVAL_PATH"))
    parser.add_argument("--ifeval-limit", type=int, default=100)
    parser.add_argument("--ifeval-max-new-tokens", type=int, default=256)
    parser.add_argument("--ifeval-seeds", default="0", help="Seeds whose aligned models get IFEval.")
    parser.add_argument("--ifeval-signals", default=None, help="Signals whose aligned models get IFEval (default all).")
    parser.add_argument("--measure-only", action="store_true", help="Report the finished runs in --out; train none.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # seed-major: a stopped benchmark has every signal at its first seeds
    pairs = [(signal, int(seed)) for seed in args.seeds.split(",") for signal in args.signals.split(",")]
    if args.measure_only:
        runs = {
            (s, seed): args.out / f"{s}-s{seed}" for s, seed in pairs if (args.out / f"{s}-s{seed}/bench.json").exists()
        }
    else:
        runs = {(s, seed): train(args, s, seed) for s, seed in pairs}
    from bench_efficacy_measure import measure_and_report

    measure_and_report(args, runs)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
