"""Batched chat generation and next-token probabilities on a loaded HF model.

Shared by the `hf` backend and by rewarders that use the live policy being trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dynalign.interfaces import Conversation, GenerationParams


def render(tokenizer: Any, conversation: Conversation, assistant_prefix: str = "") -> str:
    """The chat-templated text that asks the model for the assistant's next turn."""
    text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    return text + assistant_prefix


def _left_padded(tokenizer: Any, texts: Sequence[str], device: Any) -> dict[str, Any]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return {k: v.to(device) for k, v in batch.items()}


def generate(
    model: Any, tokenizer: Any, conversations: Sequence[Conversation], params: GenerationParams, batch_size: int = 8
) -> list[list[str]]:
    """`params.n` sampled (or greedy, at temperature 0) answers per conversation."""
    import torch

    if params.seed is not None:
        torch.manual_seed(params.seed)
    texts = [render(tokenizer, c) for c in conversations]
    sampling = params.temperature > 0
    answers: list[list[str]] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(texts), batch_size):
            batch = _left_padded(tokenizer, texts[start : start + batch_size], model.device)
            with torch.no_grad():
                output = model.generate(
                    **batch,
                    max_new_tokens=params.max_new_tokens,
                    do_sample=sampling,
                    temperature=params.temperature if sampling else None,
                    top_p=params.top_p if sampling else None,
                    top_k=None,
                    num_return_sequences=params.n,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            decoded = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i in range(0, len(decoded), params.n):
                answers.append([d.strip() for d in decoded[i : i + params.n]])
    finally:
        model.train(was_training)
    return answers


def choice_token_ids(tokenizer: Any, choices: Sequence[str]) -> list[int]:
    """The single token id of each choice; a choice that is not one token is an error."""
    ids = []
    for choice in choices:
        encoded = tokenizer.encode(choice, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"choice {choice!r} is {len(encoded)} tokens for this tokenizer; it must be one")
        ids.append(encoded[0])
    return ids


def next_token_probs(
    model: Any, tokenizer: Any, texts: Sequence[str], choices: Sequence[str], batch_size: int = 8
) -> list[dict[str, float]]:
    """For each already-rendered text, the probability of each choice as the next token."""
    import torch

    ids = choice_token_ids(tokenizer, choices)
    results: list[dict[str, float]] = []
    for start in range(0, len(texts), batch_size):
        batch = _left_padded(tokenizer, texts[start : start + batch_size], model.device)
        with torch.no_grad():
            logits = model(**batch).logits[:, -1, :].float()
        probs = torch.softmax(logits, dim=-1)[:, ids]
        results.extend({c: float(p) for c, p in zip(choices, row)} for row in probs.tolist())
    return results
