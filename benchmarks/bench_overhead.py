"""Framework overhead: seconds per GRPO step of `dynalign run` vs a plain TRL script.

    .venv/bin/python benchmarks/bench_overhead.py --steps 6 --pairs 2

All train SmolLM2-135M with LoRA, G=4, 48-token completions and the same rule-based reward
(share of lower-case words), alternating the runners `--pairs` times in one session. Plain TRL
cannot leave the system prompt out of the loss, so the like-for-like comparison is dynalign
with `exclude_system_prompt = false`; dynalign's default (excluded: a shorter loss sequence) is
shown beside it. Both run in fp32 (TRL's GRPOConfig defaults to bf16, dynalign's CPU defaults
do not). Step times are TRL's own `step_time`; the first step of each run is dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORD = re.compile(r"[a-z]+[.,]?")

PLAIN = textwrap.dedent(
    """
    import json, re, sys
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
    from dynalign_hf.backend import resolve_model_path
    from dynalign_value_ca import collective_agency

    WORD = re.compile(r"[a-z]+[.,]?")
    def share(prompts, completions, **kw):
        out = []
        for c in completions:
            words = c[-1]["content"].split()
            out.append(sum(bool(WORD.fullmatch(w)) for w in words) / len(words) if words else 0.0)
        return out

    class Times(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "step_time" in logs:
                print("STEP_TIME", logs["step_time"], flush=True)

    value = collective_agency()
    path = resolve_model_path("embedded:smollm2-135m-instruct")
    prompts = [p.prompt for p in value.prompts][:40]
    data = Dataset.from_list([{"prompt": [{"role": "system", "content": value.system_prompt.strip()},
                                          {"role": "user", "content": p}]} for p in prompts])
    args = GRPOConfig(output_dir=sys.argv[1], num_generations=4, per_device_train_batch_size=4,
                      max_steps=int(sys.argv[2]), max_completion_length=48, learning_rate=5e-5, beta=0.0,
                      logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=0, bf16=False,
                      disable_tqdm=True)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path), reward_funcs=[share], args=args,
                          train_dataset=data, processing_class=AutoTokenizer.from_pretrained(path),
                          peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"), callbacks=[Times()])
    trainer.train()
    """
)

CONFIG = """
value = "ca"
[prompts]
generator = "file"
options = {{ n = 48, held_out = 8 }}
[[rewarders]]
name = "word-rules"
options = {{ word_pattern = "[a-z]+[.,]?" }}
[optimizer]
name = "grpo"
options = {{ num_generations = 4, max_steps = {steps}, max_completion_length = 48, save_steps = 1000, \
log_kl = false, exclude_system_prompt = {exclude} }}
"""


def run_plain(work: Path, steps: int) -> list[float]:
    script = work / "plain.py"
    script.write_text(PLAIN)
    out = subprocess.run(
        [sys.executable, str(script), str(work / "plain-out"), str(steps)], capture_output=True, text=True, check=True
    )
    return [float(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("STEP_TIME")]


def run_dynalign(work: Path, steps: int, index: int, exclude: bool) -> list[float]:
    site = work / "site"
    if not site.exists():  # the example rule-based rewarder, installed beside (not into) the venv
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(site),
                str(ROOT / "examples" / "word-rules"),
            ],
            check=True,
        )
    config = work / f"bench-{exclude}.toml"
    config.write_text(CONFIG.format(steps=steps, exclude=str(exclude).lower()))
    out = work / f"dynalign-{index}-{exclude}"
    env = {**os.environ, "PYTHONPATH": str(site)}
    subprocess.run(
        [sys.executable, "-m", "dynalign.cli", "run", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return [json.loads(line)["step_time"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    like, default = "dynalign, system prompt in loss (like plain)", "dynalign default, system prompt excluded"
    times: dict[str, list[float]] = {like: [], "plain TRL": [], default: []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for index in range(args.pairs):
            times[like] += run_dynalign(work, args.steps, index, exclude=False)[1:]
            times["plain TRL"] += run_plain(work, args.steps)[1:]
            times[default] += run_dynalign(work, args.steps, index, exclude=True)[1:]
            medians = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in times.items())
            print(f"round {index + 1}: {medians}", file=sys.stderr)
    ratio = statistics.median(times[like]) / statistics.median(times["plain TRL"])
    print("| runner | median s/step | steps measured |\n| --- | ---: | ---: |")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} | {len(values)} |")
    print(f"\nratio dynalign (system prompt in loss) / plain TRL = {ratio:.3f} (target <= 1.03)")


if __name__ == "__main__":
    main()
