"""Options of the `grpo` optimizer and their translation into a TRL `GRPOConfig`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from dynalign.api import ConfigError, Options


class LoraOptions(Options):
    """LoRA adapter settings (PEFT)."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class GRPOOptions(Options):
    """Options of the `grpo` optimizer. `trl` passes any further GRPOConfig field through."""

    num_generations: int = Field(8, ge=2, description="Candidates per prompt (G); the paper uses 8.")
    prompts_per_step: int = Field(1, ge=1, description="Prompts per optimizer step (batch = prompts_per_step * G).")
    max_steps: int = Field(20, ge=1, description="Optimizer steps per round.")
    max_completion_length: int = Field(96, ge=1)
    learning_rate: float = Field(5e-5, gt=0.0, description="5e-5 suits LoRA; use ~1e-6 for full fine-tuning.")
    temperature: float = Field(1.0, gt=0.0)
    beta: float = Field(0.0, ge=0.0, description="KL coefficient to the initial policy (0: no reference model).")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="'group' divides by each group's std, which amplifies a weak judge's noise."
    )
    exclude_system_prompt: bool = Field(True, description="Leave the value's system prompt out of the loss sequence.")
    loss_system_prompt: str | None = Field(
        None, description="System message of the loss sequence; None: the chat template's default."
    )
    context_correction: bool = Field(
        False,
        description="Reweight advantages by pi(y|x)/pi(y|system,x) (truncated) for the off-policy context "
        "(needs exclude_system_prompt).",
    )
    correction_clip: float = Field(2.0, gt=1.0, description="Upper truncation of the context importance weight.")
    context_distillation: float = Field(
        0.0,
        ge=0.0,
        description="Weight of a per-token advantage log pi_initial(y_t|system,x) - log pi(y_t|x): dense credit "
        "for the tokens the value prompt favours (0: plain GRPO; needs exclude_system_prompt).",
    )
    distillation_topk: int = Field(
        0,
        ge=0,
        description="k > 0 adds a distribution-level distillation loss: KL from the teacher's top-k next-token "
        "distribution (plus the rest as one bucket) to the policy's, at each completion token (0: off).",
    )
    distillation_topk_weight: float = Field(1.0, gt=0.0, description="Weight of the top-k distillation loss.")
    share_loss_prompt: bool = Field(
        True,
        description="Run each distinct prompt once in the loss pass and reuse its keys and values for the rows "
        "that share it (exact; single-process runs only, otherwise TRL's pass).",
    )
    log_kl: bool = Field(True, description="Log KL to the initial policy even when beta = 0 (one extra forward).")
    finetune: Literal["lora", "full"] = Field("lora", description="Train a LoRA adapter (CPU default) or all weights.")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="LoRA settings (finetune = 'lora').")
    save_steps: int = Field(10, ge=1, description="Checkpoint every N steps.")
    trl: dict[str, Any] = Field(default_factory=dict, description="Further TRL GRPOConfig fields, passed through.")

    @model_validator(mode="after")
    def _two_contexts_need_the_prompt_out_of_the_loss(self) -> GRPOOptions:
        # The only check of these options: the trainer takes them as they are. With the value's
        # system prompt in the loss, generation and loss share one context, so there is no
        # off-policy ratio to correct and no gap between contexts to distil.
        if self.context_distillation > 0 and not self.exclude_system_prompt:
            raise ValueError("context_distillation needs exclude_system_prompt = true")
        if self.distillation_topk > 0 and not self.exclude_system_prompt:
            raise ValueError("distillation_topk needs exclude_system_prompt = true")
        if self.context_correction and not self.exclude_system_prompt:
            raise ValueError("context_correction needs exclude_system_prompt = true")
        return self


OWNED = {
    "num_generations",
    "max_steps",
    "max_completion_length",
    "learning_rate",
    "temperature",
    "beta",
    "scale_rewards",
    "save_steps",
    "per_device_train_batch_size",
    "output_dir",
    "reward_weights",
}


def build_grpo_config(options: GRPOOptions, output_dir: Path, seed: int, reward_weights: list[float]) -> Any:
    """A TRL GRPOConfig from our options (CPU-friendly defaults, TRL passthrough last)."""
    import torch
    from trl import GRPOConfig

    clash = sorted(OWNED & set(options.trl))
    if clash:
        raise ConfigError(f"optimizer.options.trl.{clash[0]}: set it as optimizer.options.{clash[0]} instead")
    on_gpu = torch.cuda.is_available()
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "num_generations": options.num_generations,
        "per_device_train_batch_size": options.prompts_per_step * options.num_generations,
        "max_steps": options.max_steps,
        "max_completion_length": options.max_completion_length,
        "learning_rate": options.learning_rate,
        "temperature": options.temperature,
        "beta": options.beta,
        "scale_rewards": options.scale_rewards,
        "save_steps": options.save_steps,
        "save_strategy": "steps",
        "logging_steps": 1,
        "reward_weights": reward_weights,
        "seed": seed,
        "report_to": "none",
        "use_cpu": not on_gpu,
        "bf16": on_gpu and torch.cuda.is_bf16_supported(),
        "dataloader_num_workers": 0,
        "save_only_model": False,
        "disable_tqdm": False,
        **options.trl,
    }
    try:
        with warnings.catch_warnings():  # transformers' own rename of gradient_checkpointing
            warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
            return GRPOConfig(**settings)
    except TypeError as exc:
        bad = str(exc).split("'")[1] if "'" in str(exc) else str(exc)
        raise ConfigError(f"optimizer.options.trl.{bad}: unknown TRL GRPOConfig option") from exc
    except ValueError as exc:
        raise ConfigError(f"optimizer.options: TRL rejects these settings: {str(exc).splitlines()[0]}") from exc
