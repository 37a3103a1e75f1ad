"""Batched chat generation and next-token probabilities on a loaded HF model.

Shared by the `hf` backend and by rewarders that use the live policy being trained.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from dynalign.errors import ModelError
from dynalign.inert import strip_control_tokens
from dynalign.interfaces import Conversation, GenerationParams


def control_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The strings this tokenizer turns into special tokens: its special tokens and every added
    token shaped like a control token (`<...>`, `[...]`), whatever its `special` flag."""
    found = set(getattr(tokenizer, "all_special_tokens", ()) or ())
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        content = str(getattr(token, "content", token))
        if getattr(token, "special", False) or re.fullmatch(r"<[^<>\s]+>|\[[^\[\]\s]+\]", content):
            found.add(content)
    return tuple(sorted(found))


def render(tokenizer: Any, conversation: Conversation, assistant_prefix: str = "") -> str:
    """The chat-templated text that asks the model for the assistant's next turn.

    Message contents are data: the tokenizer's control-token strings are removed from them
    before templating, so only the template itself yields special tokens.
    """
    tokens = control_tokens(tokenizer)
    safe = [
        {**m, "content": strip_control_tokens(m["content"], tokens)} if isinstance(m.get("content"), str) else m
        for m in conversation
    ]
    text = tokenizer.apply_chat_template(safe, add_generation_prompt=True, tokenize=False)
    return text + assistant_prefix


def check_context(model: Any, lengths: Sequence[int], new_tokens: int = 0) -> None:
    """Refuse token sequences longer than the model's context (they would be cut silently)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    longest = max(lengths, default=0)
    if isinstance(limit, int) and longest + new_tokens > limit:
        raise ModelError(
            f"a conversation is {longest} tokens (+{new_tokens} to generate), more than the model's context of "
            f"{limit}; shorten the prompt or the answer"
        )


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
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    check_context(model, lengths, params.max_new_tokens)
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
            raise ModelError(f"choice {choice!r} is {len(encoded)} tokens for this tokenizer; it must be one")
        ids.append(encoded[0])
    return ids


MIN_SHARED_PREFIX = 64  # tokens; below this, caching the shared prefix is not worth it


def _shared_prefix_length(token_lists: Sequence[list[int]]) -> int:
    """Tokens all lists start with, leaving at least one token of each to run."""
    first = token_lists[0]
    length = min(len(ids) for ids in token_lists) - 1
    for ids in token_lists[1:]:
        length = next((i for i in range(length) if ids[i] != first[i]), length)
    return max(length, 0)


def next_token_probs(
    model: Any, tokenizer: Any, texts: Sequence[str], choices: Sequence[str], batch_size: int = 8
) -> list[dict[str, float]]:
    """For each already-rendered text, the probability of each choice as the next token.

    Judge prompts share a long rubric; that shared prefix is run once and its key/value cache
    reused for every text, so each text costs only its own tokens.
    """
    import copy

    import torch

    ids = choice_token_ids(tokenizer, choices)
    token_lists = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    check_context(model, [len(ids) for ids in token_lists])
    shared = _shared_prefix_length(token_lists) if token_lists else 0
    prefix_cache = None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if shared >= MIN_SHARED_PREFIX:
                prefix = torch.tensor([token_lists[0][:shared]], device=model.device)
                prefix_cache = _cache_of(model(input_ids=prefix, use_cache=True))
            results: list[dict[str, float]] = []
            for start in range(0, len(texts), batch_size):
                rows = token_lists[start : start + batch_size]
                if prefix_cache is None:
                    batch = _left_padded(tokenizer, texts[start : start + batch_size], model.device)
                    logits = model(**batch).logits[:, -1, :].float()
                else:
                    logits = _suffix_logits(model, tokenizer, rows, shared, copy.deepcopy(prefix_cache))
                probs = torch.softmax(logits, dim=-1)[:, ids]
                results.extend({c: float(p) for c, p in zip(choices, row)} for row in probs.tolist())
    finally:
        model.train(was_training)
    return results


_OLD_CACHE_API = False


def _cache_of(output: Any) -> Any:
    """The key/value cache of a forward pass, under either transformers API."""
    global _OLD_CACHE_API
    if "cache" in output:
        return output["cache"]
    _OLD_CACHE_API = True
    return output["past_key_values"]


def _suffix_logits(model: Any, tokenizer: Any, rows: list[list[int]], shared: int, cache: Any) -> Any:
    """Last-token logits of each row, given the cache of their common first `shared` tokens.
    Suffixes are right-padded, so every real token keeps its true position."""
    import torch

    suffixes = [ids[shared:] for ids in rows]
    width = max(len(s) for s in suffixes)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in suffixes], device=model.device)
    suffix_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in suffixes], device=model.device)
    attention = torch.cat([torch.ones(len(rows), shared, dtype=torch.long, device=model.device), suffix_mask], 1)
    cache.batch_repeat_interleave(len(rows))
    # transformers 5 renamed past_key_values to cache (the old name warns); older ones know only the old
    keyword = "past_key_values" if _OLD_CACHE_API else "cache"
    logits = model(input_ids=input_ids, attention_mask=attention, use_cache=True, **{keyword: cache}).logits
    last = torch.tensor([len(s) - 1 for s in suffixes], device=model.device)
    return logits[torch.arange(len(rows), device=model.device), last].float()


def completion_token_ids(tokenizer: Any, completion: str | Sequence[int]) -> list[int]:
    """A completion's token ids: given as ids (the policy's own sample), or encoded from text
    as data (control-token strings in it stay plain text, never special tokens)."""
    if isinstance(completion, str):
        return list(tokenizer(completion, add_special_tokens=False, split_special_tokens=True)["input_ids"])
    return [int(i) for i in completion]


def completion_logprobs(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    completions: Sequence[str | Sequence[int]],
    batch_size: int = 8,
) -> list[list[float]]:
    """log p(token | rendered text, earlier completion tokens) for every completion token.

    The completion is tokenized on its own and appended to the rendered context, so the same
    completion gets the same tokens whatever the context (what a context contrast needs).
    """
    import torch

    contexts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    answers = [completion_token_ids(tokenizer, c) for c in completions]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    results: list[list[float]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                chunk = slice(start, start + batch_size)
                rows = [c + a for c, a in zip(contexts[chunk], answers[chunk])]
                width = max(len(r) for r in rows)
                input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=model.device)
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
                logits = model(input_ids=input_ids, attention_mask=mask).logits
                for i, answer in enumerate(answers[start : start + batch_size]):
                    if not answer:
                        results.append([])
                        continue
                    first = len(contexts[start + i])
                    # logits at position t predict token t + 1
                    step_logits = logits[i, first - 1 : first - 1 + len(answer)].float()
                    logps = torch.log_softmax(step_logits, dim=-1)
                    target = torch.tensor(answer, device=logps.device)
                    results.append(logps.gather(1, target[:, None]).squeeze(1).tolist())
    finally:
        model.train(was_training)
    return results
