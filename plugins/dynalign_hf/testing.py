"""Test kit of the `hf` backend: `pytest -p dynalign_hf.testing` adds the `tiny_model_dir`
fixture (a tiny random Llama with SmolLM2's tokenizer, saved once per session) for tests of
plugins that need a real local model; `build_tiny_model` makes one anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def build_tiny_model(folder: Path, tokenizer_source: Path | None = None) -> Path:
    """Save a tiny random Llama (2 layers, width 32) with SmolLM2's tokenizer into `folder`."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if tokenizer_source is None:
        from dynalign_hf.embedded import gguf_file

        gguf = gguf_file()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    else:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def trained_looking_lora(model: Any, rank: int = 16, scale: float = 0.01, **lora: Any) -> Any:
    """`model` wrapped in a LoRA adapter on every linear layer (rank `rank`, alpha twice that,
    other `LoraConfig` settings in `lora`) whose B matrices are drawn from N(0, scale^2), seed 0:
    a fresh adapter (B = 0) adds nothing, so sampling or scoring through it would show nothing
    of an adapter after training."""
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", task_type="CAUSAL_LM", **lora)
    model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random chat model folder, built once per test session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
