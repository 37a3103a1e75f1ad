"""Forward passes that compute every shared prefix once.

Scoring rows look like `context + continuation`, and contexts repeat: all of them start with
the same system prompt or judge rubric, and a GRPO group's candidates (or a labeled pair's
two answers) share their whole context. `forward_shared` runs in three stages, each batched:

  A. the prefix all contexts share (if it is long enough to matter), once;
  B. each distinct context's remaining tokens but its last, once, on top of A's cache;
  C. each row's last context token and its continuation, on top of its context's cache
     (the cache rows are gathered, not recomputed).

Stage C's logits at position j predict continuation token j (and, after the last one, the
token that would follow). A batch of contexts with nothing after them (a judge's prompts, which
need only the next token's distribution) runs B and C as one pass, the output layer on each
context's last position only. Padding sits between a row's context and its tail, masked out,
and every real token gets its true position, so the result equals the unshared computation up
to float rounding (tests check 1e-4 on log-probabilities). Stages B and C attend to A's prefix
without copying it per row where the model allows (`dynalign_hf.cascade`); their caches then
hold the rows' own tokens only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dynalign_hf.cascade import redone_with_copies_if_ignored

if TYPE_CHECKING:
    from dynalign_hf.prefix_store import PrefixStore

MIN_SHARED_PREFIX = 16  # tokens; a shorter common prefix is recomputed rather than cached
TAIL_POSITIONS = 1024  # stage C positions per forward pass: ~200 MB of logits at a 49k vocabulary

Reduce = Callable[[int, Any], Any]


def common_prefix_length(token_lists: Sequence[Sequence[int]]) -> int:
    """Tokens every list starts with, leaving at least one token of each outside it."""
    if not token_lists:
        return 0
    first = token_lists[0]
    length = min(len(ids) for ids in token_lists) - 1
    for ids in token_lists[1:]:
        length = next((i for i in range(length) if ids[i] != first[i]), length)
    return max(length, 0)


def split_at_siblings(
    token_lists: Sequence[Sequence[int]], least: int = MIN_SHARED_PREFIX
) -> tuple[list[list[int]], list[list[int]]]:
    """Each token list as (context, rest), for `forward_shared`: the context is the longest start
    it shares with another list (a judge's prompts for the answers to one request share the
    request) when that runs at least `least` tokens past what all lists share, else the whole
    list with nothing after; lists with one context then compute it once."""
    everyone = common_prefix_length(token_lists)
    order = sorted(range(len(token_lists)), key=lambda i: list(token_lists[i]))
    longest = [0] * len(token_lists)  # the longest start shared with another list: a neighbour's in order
    for a, b in zip(order, order[1:]):
        length = common_prefix_length([token_lists[a], token_lists[b]])
        longest[a], longest[b] = max(longest[a], length), max(longest[b], length)
    cuts = [length if length - everyone >= least else len(ids) for ids, length in zip(token_lists, longest)]
    split = list(zip(token_lists, cuts))
    return [list(ids[:cut]) for ids, cut in split], [list(ids[cut:]) for ids, cut in split]


def cache_keyword(output: Any) -> str:
    """The name a forward pass's key/value cache goes by: transformers 5 renamed
    `past_key_values` to `cache` (the old name warns); older versions know only the old one."""
    return "past_key_values" if "cache" not in output and "past_key_values" in output else "cache"


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def budgeted(items: Sequence[Any], lengths: Sequence[int], size: int, budget: int | None = None) -> list[Sequence[Any]]:
    """Consecutive batches of at most `size` items whose padded length (items x longest) stays
    within `budget` positions (default TAIL_POSITIONS: the logits of a batch, positions x
    vocabulary, bound peak memory); an item longer than the budget gets a batch of its own."""
    budget = TAIL_POSITIONS if budget is None else budget
    batches: list[Sequence[Any]] = []
    start, longest = 0, 0
    for i, length in enumerate(lengths):
        count = i - start
        widest = max(longest, length)
        if count and (count == size or (count + 1) * widest > budget):
            batches.append(items[start:i])
            start, widest = i, length
        longest = widest
    if start < len(items):
        batches.append(items[start:])
    return batches


def _right_padded(rows: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[Any, Any]:
    import torch

    width = max((len(r) for r in rows), default=0)
    ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    return ids.reshape(len(rows), width), mask.reshape(len(rows), width)


@redone_with_copies_if_ignored
def forward_shared(
    model: Any,
    contexts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    reduce: Reduce,
    *,
    pad_id: int,
    batch_size: int = 8,
    prefixes: PrefixStore | None = None,
    last_only: bool = False,
) -> list[Any]:
    """`reduce(row, logits)` for every row, where `logits` (len(continuation) + 1, vocab) are
    the model's logits predicting each continuation token and then the next one (with
    `last_only`, only the next one's, (1, vocab): the output layer runs on no other). No gradients;
    the model is put in eval mode for the call. Every context needs at least one token. With
    `prefixes` (only for a model that never changes), the shared prefix's cache is taken from
    it when it holds one (then the shared part is the stored prefix: what follows it is run as
    each context's own) and kept in it otherwise. A call whose model turns out to attend its own
    way, without the prefix apart (`dynalign_hf.cascade`), is redone with the prefix copied."""
    import torch

    if any(not c for c in contexts):
        raise ValueError("forward_shared: every context needs at least one token")
    if not contexts:
        return []
    distinct: dict[tuple[int, ...], list[int]] = {}
    for row, context in enumerate(contexts):
        distinct.setdefault(tuple(context), []).append(row)
    keys = list(distinct)
    shared = common_prefix_length(keys)
    stored = prefixes.longest(keys[0][:shared], MIN_SHARED_PREFIX) if prefixes is not None else None
    if stored is not None:
        shared = stored[0]
    run = SharedPass(model, shared if shared >= MIN_SHARED_PREFIX else 0, pad_id)
    results: list[Any] = [None] * len(contexts)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if stored is not None:
                run.prefix = stored[1]
            else:
                run.prefill(keys[0])
                if prefixes is not None and run.prefix is not None:
                    prefixes.put(keys[0][: run.shared], run.prefix)
            for chunk in _chunks(keys, batch_size):
                rows = [(local, row) for local, key in enumerate(chunk) for row in distinct[key]]
                if not any(continuations[row] for _, row in rows):  # nothing follows: B and C in one pass
                    last = run.last_logits(chunk)
                    for local, row in rows:
                        results[row] = reduce(row, last[local : local + 1].float())
                    continue
                stage = run.contexts(chunk)
                for part in budgeted(rows, [len(continuations[row]) + 1 for _, row in rows], batch_size):
                    tails = [[chunk[local][-1], *continuations[row]] for local, row in part]
                    starts = [len(contexts[row]) - 1 for _, row in part]
                    logits = run.tails(stage, [local for local, _ in part], tails, starts, last_only)
                    for i, (_, row) in enumerate(part):
                        own = logits[i : i + 1] if last_only else logits[i, : len(tails[i])]
                        results[row] = reduce(row, own.float())
    finally:
        model.train(was_training)
    return results


@dataclass
class _ContextStage:
    """Stage B's result for a chunk of contexts: their cache (None: nothing cached) and the
    attention mask of their right-padded part after the shared prefix."""

    cache: Any
    middle_mask: Any


class SharedPass:
    """The three stages of `forward_shared` on one model (sampling's prefill runs A and B:
    `dynalign_hf.sampling`)."""

    def __init__(self, model: Any, shared: int, pad_id: int) -> None:
        from dynalign_hf.cascade import supports

        self.model, self.shared, self.pad_id = model, shared, pad_id
        self.device = model.device
        self.prefix: Any = None
        self.keyword = "cache"
        # stages B and C attend to the prefix without a copy per row (`dynalign_hf.cascade`):
        # their caches then hold the rows' own tokens only
        self.apart = bool(shared) and supports(model)

    def _run(self, cache: Any, **inputs: Any) -> Any:
        from dynalign_hf.cascade import KEYWORD, SharedPrefix, attending_to, check_attended

        if cache is not None:
            inputs[self.keyword] = cache
        if not (self.apart and self.prefix is not None):  # stage A, or a model that needs the copies
            output = self.model(use_cache=True, **inputs)
        else:
            shared = SharedPrefix(self.prefix)
            with attending_to(self.model):
                output = self.model(use_cache=True, **inputs, **{KEYWORD: shared})
            check_attended(self.model, shared, len(self.prefix.layers))
        self.keyword = cache_keyword(output)
        return output

    def _cache(self, output: Any) -> Any:
        return output[self.keyword]

    def _ones(self, rows: int) -> Any:
        import torch

        return torch.ones(rows, self.shared, dtype=torch.long, device=self.device)

    def prefill(self, first: Sequence[int]) -> None:
        """Stage A: the cache of the shared prefix (nothing when there is none)."""
        import torch

        if self.shared:
            ids = torch.tensor([list(first[: self.shared])], device=self.device)
            self.prefix = self._cache(self._run(None, input_ids=ids, logits_to_keep=1))

    def contexts(self, chunk: Sequence[tuple[int, ...]]) -> _ContextStage:
        """Stage B: each context of `chunk` up to (not including) its last token."""
        ids, mask = _right_padded([key[self.shared : -1] for key in chunk], self.pad_id, self.device)
        cache = self._prefix_rows(len(chunk))
        if ids.shape[1] == 0:
            return _ContextStage(cache, mask)
        output = self._own_tokens(cache, ids, mask, logits_to_keep=1)
        return _ContextStage(self._cache(output), mask)

    def last_logits(self, chunk: Sequence[tuple[int, ...]]) -> Any:
        """Stages B and C in one pass, for contexts with nothing after them: the logits
        (len(chunk), vocab) each context of `chunk` gives its next token."""
        ids, mask = _right_padded([key[self.shared :] for key in chunk], self.pad_id, self.device)
        keep, pick = _last_positions(mask)
        return pick(self._own_tokens(self._prefix_rows(len(chunk)), ids, mask, logits_to_keep=keep).logits)

    def _prefix_rows(self, rows: int) -> Any:
        """The cache a batch of `rows` starts from: the prefix's, one copy per row, when the
        model attends to it through its cache (None when there is no prefix or it is apart)."""
        if self.prefix is None or self.apart:
            return None
        cache = copy.deepcopy(self.prefix)
        cache.batch_repeat_interleave(rows)
        return cache

    def _own_tokens(self, cache: Any, ids: Any, mask: Any, logits_to_keep: Any) -> Any:
        """A forward pass over right-padded tokens that follow the shared prefix."""
        import torch

        attention = mask if self.apart else torch.cat([self._ones(len(ids)), mask], dim=1)
        positions = (self.shared + torch.arange(ids.shape[1], device=self.device)).expand(len(ids), -1)
        return self._run(
            cache, input_ids=ids, attention_mask=attention, position_ids=positions, logits_to_keep=logits_to_keep
        )

    def tails(
        self, stage: _ContextStage, locals_: list[int], tails: list[list[int]], starts: list[int], last_only: bool
    ) -> Any:
        """Stage C: logits of each tail (a context's last token, then the continuation) on the
        cache rows of its context (`locals_` index the chunk); `starts` are the tails' positions.
        With `last_only`, each tail's last position's only: (tails, vocab)."""
        import torch

        index = torch.tensor(locals_, dtype=torch.long, device=self.device)
        ids, tail_mask = _right_padded(tails, self.pad_id, self.device)
        cache = None
        if stage.cache is not None:
            cache = copy.deepcopy(stage.cache)
            cache.batch_select_indices(index)
        seen = (
            [stage.middle_mask[index], tail_mask]
            if self.apart
            else [self._ones(len(tails)), stage.middle_mask[index], tail_mask]
        )
        attention = torch.cat(seen, dim=1)
        positions = torch.tensor(starts, device=self.device)[:, None] + torch.arange(ids.shape[1], device=self.device)
        if not last_only:
            return self._run(cache, input_ids=ids, attention_mask=attention, position_ids=positions).logits
        keep, pick = _last_positions(tail_mask)
        inputs = {"input_ids": ids, "attention_mask": attention, "position_ids": positions, "logits_to_keep": keep}
        return pick(self._run(cache, **inputs).logits)


def _last_positions(mask: Any) -> tuple[Any, Callable[[Any], Any]]:
    """For right-padded rows with `mask`: the positions holding some row's last token (sorted,
    what `logits_to_keep` takes), and a function picking each row's own from logits kept there."""
    import torch

    lasts = mask.sum(dim=1) - 1
    keep = torch.unique(lasts)
    rows = torch.arange(len(lasts), device=mask.device)
    return keep, lambda logits: logits[rows, torch.searchsorted(keep, lasts)]
