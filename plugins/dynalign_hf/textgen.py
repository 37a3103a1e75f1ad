"""Batched chat generation and next-token probabilities on a loaded HF model.

Shared by the `hf` backend and by rewarders that use the live policy being trained.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dynalign.api import Conversation, GenerationParams, ModelError, strip_control_tokens

if TYPE_CHECKING:
    from dynalign_hf.prefix_store import PrefixStore
    from dynalign_hf.skinny import Products


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


GENERATION_CACHE_BYTES = 1 << 30  # key/value cache one `generate` call may hold (rows x positions)


def cache_bytes_per_position(model: Any) -> int | None:
    """Bytes of key/value cache one token of one row takes (None when the config does not say)."""
    config = getattr(model, "config", None)
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (getattr(config, "hidden_size", 0) // heads if heads else None)
    if not all(isinstance(v, int) and v > 0 for v in (layers, kv_heads, head_dim)):
        return None
    element = next(model.parameters()).element_size()
    return 2 * layers * kv_heads * head_dim * element


def _left_padded(tokenizer: Any, texts: Sequence[str], device: Any) -> dict[str, Any]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    return {k: v.to(device) for k, v in batch.items()}


def generate(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    params: GenerationParams,
    batch_size: int = 8,
    products: Products = "auto",
) -> list[list[str]]:
    """`params.n` sampled (or greedy, at temperature 0) answers per conversation; decoding's
    products taken the `products` way (`dynalign_hf.skinny`)."""
    import torch

    from dynalign_hf.prefix import budgeted
    from dynalign_hf.sampling import generate_shared

    if params.seed is not None:
        torch.manual_seed(params.seed)
    texts = [render(tokenizer, c) for c in conversations]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    check_context(model, lengths, params.max_new_tokens)
    sampling = params.temperature > 0
    # a call holds every row's cache at once: long prompts (a teacher context with exemplars) get
    # fewer conversations per call, so the cache stays within GENERATION_CACHE_BYTES
    per_position = cache_bytes_per_position(model)
    positions = [(length + params.max_new_tokens) * params.n for length in lengths]
    budget = GENERATION_CACHE_BYTES // per_position if per_position else sum(positions)
    answers: list[list[str]] = []
    was_training = model.training
    model.eval()
    try:
        for chunk in budgeted(range(len(texts)), positions, batch_size, budget):
            batch = _left_padded(tokenizer, [texts[i] for i in chunk], model.device)
            # the n samples of a conversation share its prefill (instead of num_return_sequences)
            input_ids = batch["input_ids"].repeat_interleave(params.n, dim=0)
            with torch.no_grad():
                output = generate_shared(
                    model,
                    input_ids,
                    batch["attention_mask"].repeat_interleave(params.n, dim=0),
                    max_new_tokens=params.max_new_tokens,
                    do_sample=sampling,
                    temperature=params.temperature if sampling else None,
                    top_p=params.top_p if sampling else None,
                    top_k=None,
                    pad_token_id=tokenizer.pad_token_id,
                    products=products,
                )
            new_tokens = output[:, input_ids.shape[1] :]
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


def next_token_probs(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    choices: Sequence[str],
    batch_size: int = 8,
    prefixes: PrefixStore | None = None,
) -> list[dict[str, float]]:
    """For each already-rendered text, the probability of each choice as the next token.

    Judge prompts share a long rubric; that shared prefix is run once and its key/value cache
    reused for every text (`dynalign_hf.prefix`), and so is the request that the prompts for
    several answers to it share, so each text costs only its own tokens.
    """
    import torch

    from dynalign_hf.prefix import forward_shared, split_at_siblings

    ids = choice_token_ids(tokenizer, choices)
    token_lists = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    check_context(model, [len(t) for t in token_lists])

    def reduce(row: int, logits: Any) -> dict[str, float]:
        probs = torch.softmax(logits[-1], dim=-1)[ids]
        return {c: float(p) for c, p in zip(choices, probs.tolist())}

    contexts, rests = split_at_siblings(token_lists)
    pad_id = _pad_id(tokenizer)
    return forward_shared(
        model, contexts, rests, reduce, pad_id=pad_id, batch_size=batch_size, prefixes=prefixes, last_only=True
    )


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


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
    prefixes: PrefixStore | None = None,
) -> list[list[float]]:
    """log p(token | rendered text, earlier completion tokens) for every completion token.

    The completion is tokenized on its own and appended to the rendered context, so the same
    completion gets the same tokens whatever the context (what a context contrast needs).
    Shared prefixes (system prompt, a group's prompt) are computed once (`dynalign_hf.prefix`).
    """
    import torch

    from dynalign_hf.prefix import forward_shared

    contexts, answers = _scoring_rows(model, tokenizer, texts, completions)

    def reduce(row: int, logits: Any) -> list[float]:
        answer = answers[row]
        if not answer:
            return []
        logps = torch.log_softmax(logits[: len(answer)], dim=-1)
        target = torch.tensor(answer, device=logps.device)
        return logps.gather(1, target[:, None]).squeeze(1).tolist()

    pad_id = _pad_id(tokenizer)
    return forward_shared(model, contexts, answers, reduce, pad_id=pad_id, batch_size=batch_size, prefixes=prefixes)


def _scoring_rows(
    model: Any, tokenizer: Any, texts: Sequence[str], completions: Sequence[str | Sequence[int]]
) -> tuple[list[list[int]], list[list[int]]]:
    """Token rows of each rendered context and its completion, checked against the model's length."""
    contexts = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    answers = [completion_token_ids(tokenizer, c) for c in completions]
    check_context(model, [len(c) + len(a) for c, a in zip(contexts, answers)])
    return contexts, answers


def completion_topk(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    completions: Sequence[str | Sequence[int]],
    k: int,
    batch_size: int = 8,
    prefixes: PrefixStore | None = None,
) -> list[tuple[list[list[int]], list[list[float]]]]:
    """Per completion: at each of its positions, the model's k most likely next tokens and their
    log-probabilities, given the rendered text and the earlier completion tokens (shared
    prefixes computed once, as in `completion_logprobs`)."""
    import torch

    from dynalign_hf.prefix import forward_shared

    contexts, answers = _scoring_rows(model, tokenizer, texts, completions)

    def reduce(row: int, logits: Any) -> tuple[list[list[int]], list[list[float]]]:
        width = len(answers[row])
        top = torch.log_softmax(logits[:width], dim=-1).topk(k, dim=-1)
        return top.indices.tolist(), top.values.tolist()

    pad_id = _pad_id(tokenizer)
    return forward_shared(model, contexts, answers, reduce, pad_id=pad_id, batch_size=batch_size, prefixes=prefixes)
