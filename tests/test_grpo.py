"""The `grpo` optimizer on a tiny random model: CLI end to end, loss context, kill and resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_config

TINY_RUN = """
value = "ca"
seed = 3
[policy]
backend = "hf"
options = {{ model = "{model}" }}
[prompts]
generator = "file"
options = {{ n = 16, held_out = 4 }}
[[rewarders]]
name = "self-reward"
[optimizer]
name = "grpo"
options = {{ num_generations = 4, max_steps = {steps}, max_completion_length = 12, save_steps = 2 }}
"""

METRIC_KEYS = {
    "step",
    "seconds",
    "reward_mean",
    "reward_std",
    "zero_std_fraction",
    "unscorable_rate",
    "completion_length",
    "kl",
    "loss",
    "learning_rate",
}


def test_cli_runs_grpo_end_to_end(tmp_path, tiny_model_dir, run_cli):
    config = write_config(tmp_path / "tiny.toml", TINY_RUN.format(model=tiny_model_dir, steps=3))
    result = run_cli("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert METRIC_KEYS <= set(rows[0]), METRIC_KEYS - set(rows[0])
    # the default self-reward (auto) measured its signals first and trains on the best
    choice = json.loads((tmp_path / "run" / "self_reward_signal.json").read_text())
    assert choice["chosen"] in choice["measured"] and "self-reward auto: chose" in result.stdout
    assert all(math.isfinite(r["reward_mean"]) for r in rows)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    round_dir = tmp_path / "run" / "rounds" / "0"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapted = PeftModel.from_pretrained(base, round_dir / "checkpoints" / "checkpoint-2")  # stock PEFT loading
    assert any("lora" in name for name, _ in adapted.named_parameters())
    merged = AutoModelForCausalLM.from_pretrained(round_dir / "model")
    changed = any(
        not (p.detach() == q.detach()).all()
        for p, q in zip(merged.parameters(), AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters())
    )
    assert changed  # training moved the weights
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["rounds"]["0"]["steps"] == 3


def _trainer(tiny_model_dir, tmp_path, value, reward=None, **options):
    """A trainer on the tiny model, built as the optimizer builds it: from validated options."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dynalign_grpo.options import GRPOOptions, build_grpo_config
    from dynalign_grpo.trainer import ValueContextGRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    grpo = GRPOOptions(num_generations=2, max_steps=1, max_completion_length=4, **options)
    return ValueContextGRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        reward_funcs=[
            reward or (lambda prompts, completions, **kw: [float(len(c[0]["content"])) for c in completions])
        ],
        args=build_grpo_config(grpo, tmp_path / "ckpt", 0, [1.0]),
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": "Plan a street party."}]}] * 2),
        processing_class=tokenizer,
        options=grpo,
        value_system_prompt=value.system_prompt.strip(),
    ), tokenizer


@pytest.mark.parametrize("exclude", [True, False])
def test_loss_sees_the_prompt_without_the_value_system_prompt(tiny_model_dir, tmp_path, ca_value, exclude):
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, exclude_system_prompt=exclude)
    inputs = [{"prompt": [{"role": "user", "content": "Plan a street party."}]}] * 2
    batch = trainer._generate_and_score_completions(inputs)
    loss_text = tokenizer.decode(batch["prompt_ids"][0][batch["prompt_mask"][0].bool()])
    generation_text = tokenizer.decode(trainer._generation_prompt_ids[0])
    value_marker = ca_value.system_prompt.strip()[:60]
    assert value_marker in generation_text and "Plan a street party." in generation_text
    assert "Plan a street party." in loss_text
    if exclude:
        assert value_marker not in loss_text
        assert "You are a helpful AI assistant named SmolLM" in loss_text  # the template's own default
    else:
        assert value_marker in loss_text


def test_context_correction_reweights_advantages(tiny_model_dir, tmp_path, ca_value):
    trainer, _ = _trainer(tiny_model_dir, tmp_path, ca_value, context_correction=True)
    batch = trainer._generate_and_score_completions([{"prompt": [{"role": "user", "content": "Hi"}]}] * 2)
    weights = trainer._metrics["train"]["context/importance_weight"]
    assert len(weights) == 1 and 0.0 < weights[0] <= trainer.options.correction_clip
    assert batch["advantages"].shape == (2,)


def _hand_logps(model, prompt_ids, completion_ids):
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + completion_ids])).logits[0]
    steps = torch.log_softmax(logits[len(prompt_ids) - 1 : -1].float(), dim=-1)
    return steps.gather(1, torch.tensor(completion_ids)[:, None]).squeeze(1)


def test_context_distillation_adds_the_per_token_value_context_gap(tiny_model_dir, tmp_path, ca_value):
    from contextlib import nullcontext

    import torch

    # equal rewards: GRPO's own advantages are 0, so what remains is the distillation term alone
    def equal(prompts, completions, **kw):
        return [1.0] * 2

    trainer, _ = _trainer(tiny_model_dir, tmp_path, ca_value, equal, context_distillation=0.5)
    trainer.reference_policy = lambda: nullcontext(trainer.model)  # initial = current, before any step
    batch = trainer._generate_and_score_completions([{"prompt": [{"role": "user", "content": "Hi"}]}] * 2)
    trainer._compute_loss(trainer.model, batch)  # the credit comes with the loss's own pass (dynalign_grpo.credit)
    advantages, mask = batch["advantages"], batch["completion_mask"]
    assert advantages.shape == batch["completion_ids"].shape
    for row in range(2):
        tokens = batch["completion_ids"][row][mask[row].bool()].tolist()
        prompted = _hand_logps(trainer.model, trainer._generation_prompt_ids[row], tokens)
        bare = _hand_logps(trainer.model, trainer.last_loss_prompt_ids[row], tokens)
        assert torch.allclose(advantages[row][mask[row].bool()], 0.5 * (prompted - bare), atol=1e-4)
        assert torch.all(advantages[row][~mask[row].bool()] == 0)
    assert len(trainer._metrics["train"]["context/distill_gap"]) == 1
    assert len(trainer._metrics["train"]["kl"]) == 1  # logged from the same policy pass


def test_reference_passes_a_contrast_rewarder_made_are_not_made_again(tiny_model_dir, tmp_path, ca_value, monkeypatch):
    from contextlib import nullcontext

    import torch

    import dynalign_hf.textgen as textgen
    from dynalign.api import RunContext
    from dynalign_hf.handle import HFPolicyHandle
    from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions

    rewarder = SelfRewarder(SelfRewardOptions(mode="contrast"), RunContext(value=ca_value, registry=None))
    trainer, tokenizer = _trainer(tiny_model_dir, tmp_path, ca_value, rewarder, context_distillation=1.0)
    trainer.reference_policy = lambda: nullcontext(trainer.model)  # initial = current, before any step
    trainer.policy_handle = HFPolicyHandle(trainer.model, tokenizer, trainer.reference_policy)
    rewarder.bind_policy(trainer.policy_handle)
    passes = []
    real = textgen.completion_logprobs
    monkeypatch.setattr(textgen, "completion_logprobs", lambda *a, **k: passes.append(1) or real(*a, **k))

    batch = trainer._generate_and_score_completions([{"prompt": [{"role": "user", "content": "Hi"}]}] * 2)
    assert len(passes) == 2  # the contrast's two; distillation and KL reused them (the live side: the loss pass)
    trainer._compute_loss(trainer.model, batch)
    assert len(passes) == 2
    assert len(trainer._metrics["train"]["context/distill_gap"]) == len(trainer._metrics["train"]["kl"]) == 1
    for context in ("generation", "loss"):
        for reference in (True, False):
            shared = trainer._logps(context, batch, reference=reference)
            trainer.policy_handle = None  # the trainer's own pass over the same tokens agrees
            assert torch.allclose(shared, trainer._logps(context, batch, reference=reference), atol=1e-4)
            trainer.policy_handle = rewarder.policy


@pytest.mark.parametrize("option", [{"context_distillation": 1.0}, {"context_correction": True}])
def test_the_two_context_options_need_the_prompt_out_of_the_loss(option):
    from pydantic import ValidationError

    from dynalign_grpo.options import GRPOOptions

    name = next(iter(option))
    with pytest.raises(ValidationError, match=f"{name} needs exclude_system_prompt = true"):
        GRPOOptions(**option, exclude_system_prompt=False)
    assert getattr(GRPOOptions(**option), name) == option[name]  # with the default (excluded) it holds


def _dynalign(*args: str, cwd: Path, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """`dynalign ARGS` in a session of its own, so that a kill reaches whatever it spawned (vLLM
    does); its output piped, or into `log` when it is left running (a full pipe would block it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "dynalign.cli", *args],
        cwd=cwd,
        env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
        stdout=log.open("wb") if log else subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL `process` and everything it spawned (vLLM does; its own session's group, and any
    child that left it); check that nothing of it is left running."""
    import psutil

    spawned = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGKILL)
    for child in spawned:
        if child.is_running():
            child.kill()
    process.wait()
    _, alive = psutil.wait_procs(spawned, timeout=30)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], alive


def kill_after_rows(
    process: subprocess.Popen, metrics: Path, rows: int, log: Path, timeout: float = 300, written: Path | None = None
) -> int:
    """Kill the run (`kill_group`) once `metrics` has `rows` lines and the file `written` (a
    checkpoint's) exists; return the rows it had logged."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= rows and (written is None or written.exists()):
            break
        time.sleep(0.1)
    assert process.poll() is None, log.read_text(errors="replace")[-3000:]
    kill_group(process)
    return len(metrics.read_text().splitlines())


def resume_finishes(config: Path, run: Path, steps: int, env: dict[str, str] | None = None, timeout=300) -> str:
    """Resume the killed run to the end; check each step was logged once and the run directory
    counts all of them. Returns the resumed run's output."""
    resumed = _dynalign("run", str(config), "--out", str(run), "--resume", cwd=run.parent, env=env)
    output = resumed.communicate(timeout=timeout)[0].decode(errors="replace")
    assert resumed.returncode == 0, output[-3000:]
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, steps + 1))
    assert json.loads((run / "state.json").read_text())["rounds"]["0"]["steps"] == steps
    return output


def test_kill_and_resume_gives_each_step_once(tmp_path, tiny_model_dir):
    config = write_config(tmp_path / "tiny.toml", TINY_RUN.format(model=tiny_model_dir, steps=6))
    run, log = tmp_path / "run", tmp_path / "killed.log"
    process = _dynalign("run", str(config), "--out", str(run), cwd=tmp_path, log=log)
    assert kill_after_rows(process, run / "metrics.jsonl", 3, log) < 6
    output = resume_finishes(config, run, 6)
    assert "Warning" not in output, output[-2000:]  # progress bars and one-line summaries only


def test_trl_logs_become_the_metrics_schema():
    from dynalign_grpo.metrics import schema_row

    row = schema_row(
        {
            "loss": 0.1,
            "reward": 2.0,
            "frac_reward_zero_std": 0.25,
            "rewards/judge/mean": 2.0,
            "self-reward/pillar/Knowledge": 3.0,
            "self-reward/unscorable_rate": 0.25,
            "judge/unscorable_rate": 0.5,
            "self-reward/length_corr": 0.3,
            "completions/min_length": 4,
            "clip_ratio/low_mean": 0.0,
        }
    )
    assert row == {
        "loss": 0.1,
        "reward_mean": 2.0,
        "zero_std_fraction": 0.25,
        "judge/mean": 2.0,
        "pillar/Knowledge": 3.0,
        "self-reward/unscorable_rate": 0.25,
        "judge/unscorable_rate": 0.5,
        "unscorable_rate": 0.5,
        "self-reward/length_corr": 0.3,
        "length_reward_corr": 0.3,
    }


def test_a_step_without_a_scorable_completion_is_logged_not_fatal():
    """Every completion unscorable (a small policy's written verdicts): TRL logs no reward mean."""
    from types import SimpleNamespace

    from dynalign_grpo.metrics import MetricsCallback

    rows = []
    callback = MetricsCallback(rows.append)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=2, global_step=0)
    callback.on_train_begin(None, state, None)
    state.global_step = 1
    callback.on_log(None, state, None, logs={"loss": 0.0, "reward": None, "rewards/self-reward/mean": None})
    callback.on_train_end(None, state, None)
    assert rows[0]["step"] == 1 and rows[0]["reward_mean"] is None


def test_rewarder_metrics_reach_the_schema_under_one_prefix(server, ca_value, dynalign_registry, tmp_path):
    """The keys a real rewarder (the judge) reports, through the optimizer's logger: one
    `judge/` prefix, and `unscorable_rate` fed from it."""
    from dynalign.api import RunContext
    from dynalign_grpo.metrics import reward_function, schema_row

    server.script(["Score: 11"])  # out of range: unscorable
    model = {"model": "fake-judge", "base_url": server.openai_url, "api_key_env": "FAKE_API_KEY"}
    context = RunContext(value=ca_value, registry=dynalign_registry, run_dir=tmp_path)
    judge = context.build(
        "rewarder", "judge", {"model": {"backend": "openai", "options": model}, "logprobs": "never"}, "r"
    )
    logged: dict[str, float] = {}
    prompt = [{"role": "user", "content": "How do we share the garden?"}]
    scores = reward_function(judge)(
        [prompt, prompt],
        [[{"role": "assistant", "content": "Draw plots by lottery."}], [{"role": "assistant", "content": "No."}]],
        log_metric=logged.__setitem__,
    )
    assert scores == [None, None]
    row = schema_row({"loss": 0.1, "rewards/judge/mean": 0.0, **logged})
    assert row["judge/unscorable_rate"] == 1.0 and row["unscorable_rate"] == 1.0
    assert all(key.count("judge/") <= 1 for key in row), sorted(row)


def test_a_rewarder_breaking_the_contract_stops_training_with_one_line(tmp_path, tiny_model_dir, run_cli, fake_dist):
    from test_score_command import BROKEN_REWARDER

    fake_dist("dynalign-broken-rewarder", "broken_rewarder", BROKEN_REWARDER)
    text = TINY_RUN.format(model=tiny_model_dir, steps=1).replace('name = "self-reward"', 'name = "broken"')
    config = write_config(tmp_path / "broken.toml", text)
    result = run_cli("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" not in result.stderr  # (stderr also holds progress bars)
    assert (
        "error: rewarder 'broken' must return a list of 4 scores (a float, or None when unscorable); "
        "it returned '5' (str)\n" in result.stderr
    )
