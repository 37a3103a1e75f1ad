"""Trained weights into a colocated vLLM on CPU.

TRL's colocate sync hands vLLM one checkpoint tensor at a time through the model's
`load_weights`. vLLM's CPU build repacks its linear layers for its kernels once the model has
loaded, so those layers no longer take checkpoint tensors ("'Parameter' object has no attribute
'weight_loader'"). vLLM's in-place reload restores the checkpoint layout, loads, and repacks
again; on CPU the sync goes through it (GPUs keep TRL's own sync).
"""

from __future__ import annotations

from typing import Any


def reload_into_vllm(generation: Any) -> None:
    """Send the trainer's weights (LoRA merged, as TRL names them) to the colocated engine by
    in-place reload, then drop its prefix cache (the cached prompts were computed with the old ones)."""
    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    # copies: under LoRA TRL unmerges the adapter in place once its iterator ends, and the reload
    # may hold a layer's tensors until the layer is complete
    weights = ((name, tensor.clone()) for name, tensor in generation._iter_named_params())
    runner.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
    generation.llm.reset_prefix_cache()


def sync_by_reload_on_cpu(generation: Any, on_gpu: bool) -> None:
    """Make TRL's colocated vLLM sync its weights by in-place reload, on CPU only."""
    if on_gpu or generation.mode != "colocate":
        return
    generation.sync_weights = lambda: reload_into_vllm(generation)
