"""Marked tests: real SmolLM2 steps, two processes under accelerate, and proof that GRPO learns."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, dynalign_with, tiny_policy_config, write_config

SMOLLM2_RUN = """
value = "ca"
[prompts]
generator = "file"
options = { n = 12, held_out = 4 }
[[rewarders]]
name = "self-reward"
options = { mode = "probability", pillar_diagnostics = true }
[optimizer]
name = "grpo"
options = { num_generations = 4, max_steps = 2, max_completion_length = 24, save_steps = 2 }
"""


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.model
def test_smollm2_self_aligns_for_a_few_real_steps(tmp_path, run_cli):
    config = write_config(tmp_path / "smol.toml", SMOLLM2_RUN)
    result = run_cli("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:
        assert 0.0 < row["reward_mean"] < 5.0 and row["unscorable_rate"] == 0.0
        assert {"pillar/Knowledge", "pillar/Benevolence"} <= set(row)
    assert (tmp_path / "run" / "rounds" / "0" / "model" / "model.safetensors").exists()


@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_launch(tmp_path, tiny_model_dir):
    config = tiny_policy_config(
        tmp_path / "ddp.toml",
        tiny_model_dir,
        """
        [prompts]
        generator = "file"
        options = { n = 16, held_out = 4 }
        [[rewarders]]
        name = "self-reward"
        options = { mode = "contrast" }
        [optimizer]
        name = "grpo"
        options = { num_generations = 4, max_steps = 2, max_completion_length = 8, save_steps = 2 }
        """,
    )
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or "accelerate"
    done = subprocess.run(
        [
            accelerate,
            "launch",
            "--config_file",
            str(ROOT / "examples" / "accelerate" / "cpu-2proc.yaml"),
            "-m",
            "dynalign.cli",
            "run",
            str(config),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]  # rank 0 writes, once per step
    assert all(r["unscorable_rate"] == 0.0 for r in rows)  # the self-rewarder scored in both processes
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["rounds"]["0"]["world_size"] == 2


LEARNING_RUN = """
value = "ca"
seed = 0
[prompts]
generator = "file"
options = { held_out = 8 }
[[rewarders]]
name = "word-rules"
options = { openers = ["to", "the", "when", "imagine", "learning", "teaching", "here"] }
[optimizer]
name = "grpo"
options = { num_generations = 8, max_steps = 30, max_completion_length = 8, save_steps = 100, learning_rate = 5e-4, log_kl = false, scale_rewards = "batch" }
"""


@pytest.mark.slow
def test_grpo_raises_a_rule_based_reward_on_smollm2(tmp_path, examples_site):
    """Proof that the optimizer learns: with the example rule-based rewarder (1 when the answer
    opens with one of a few words SmolLM2 uses about a third of the time), the mean reward of
    the last 8 steps clearly beats the first 8 (measured: 0.24 -> 1.00 in 30 steps)."""
    config = write_config(tmp_path / "learn.toml", LEARNING_RUN)
    done = dynalign_with(examples_site, "run", config, "--out", tmp_path / "run", cwd=tmp_path, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    rewards = [row["reward_mean"] for row in _rows(tmp_path / "run")]
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    print(f"reward first 8 steps {first:.3f}, last 8 steps {last:.3f}: {[round(r, 3) for r in rewards]}")
    assert last > first + 0.3


CONTRAST_RUN = """
value = "ca"
seed = 0
[prompts]
generator = "file"
options = { n = 24, held_out = 8 }
[[rewarders]]
name = "self-reward"
options = { mode = "auto" }
[optimizer]
name = "grpo"
options = { num_generations = 4, prompts_per_step = 2, max_steps = 12, max_completion_length = 48, save_steps = 12, learning_rate = 3e-4, context_distillation = 3.0 }
"""


@pytest.mark.slow
def test_a_short_auto_run_picks_contrast_and_moves_the_value_prompt_into_the_weights(tmp_path, run_cli):
    from dynalign.plugins import load_registry
    from dynalign_eval.efficacy import gap_closed
    from dynalign_hf.backend import HFChatModel, HFOptions

    config = write_config(tmp_path / "contrast.toml", CONTRAST_RUN)
    result = run_cli("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    choice = json.loads((tmp_path / "run/self_reward_signal.json").read_text())
    # on CA's calibration pairs SmolLM2's judge is at chance and the summed contrast is not
    assert choice["chosen"] == "contrast-sum", choice
    assert choice["measured"]["contrast-sum"]["accuracy"] > choice["measured"]["probability"]["accuracy"]
    assert "self-reward auto: chose contrast-sum" in result.stdout
    value = load_registry().get("value", "ca").obj
    base, aligned = HFChatModel(HFOptions()), HFChatModel(HFOptions(model=str(tmp_path / "run/rounds/0/model")))
    prompts = [
        json.loads(line)["prompt"] for line in (tmp_path / "run/prompts/held_out.jsonl").read_text().splitlines()
    ]
    # 8 samples a prompt: with 4, the interval's lower end crossed 0 when the samples differed by
    # float rounding (the same trained weights gave [-0.31, 0.55] in one process, [0.005, 0.51] in another)
    gap = gap_closed(value, base, aligned, prompts, samples=8, max_new_tokens=48, resamples=500)
    # the policy without the system prompt moved toward itself with it: KL to the prompted base fell
    assert gap["kl_aligned_nats"] < gap["kl_base_nats"] and gap["ci95"][0] > 0, gap
