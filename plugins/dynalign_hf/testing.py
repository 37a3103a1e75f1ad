"""Test kit of the `hf` backend: `pytest -p dynalign_hf.testing` adds the `tiny_model_dir`
fixture (a tiny random Llama with SmolLM2's tokenizer, saved once per session) for tests of
plugins that need a real local model; `build_tiny_model` makes one anywhere."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random chat model folder, built once per test session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
