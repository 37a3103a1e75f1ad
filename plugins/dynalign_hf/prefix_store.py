"""Key/value caches of shared prefixes kept across calls, for a model that never changes.

`forward_shared` runs the prefix all its sequences share once per call. The reference policy
is scored call after call with the same prefixes (the value's system prompt or teacher context
before every GRPO step's candidates, the template's default system prompt for the contrast),
and it never changes, so its prefix caches can outlive the call: a `PrefixStore` keeps the
most recently used ones within a byte budget. Only a caller that knows its model is frozen
should pass one (`HFPolicyHandle` does, for reference passes).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

STORE_BYTES = 256 << 20  # a 2k-token teacher context of SmolLM2 is ~95 MB; the demo's prompts ~8 MB


def cache_bytes(cache: Any) -> int:
    """Bytes of keys and values a transformers cache holds."""
    tensors = [t for layer in getattr(cache, "layers", ()) for t in (layer.keys, layer.values) if t is not None]
    return sum(t.numel() * t.element_size() for t in tensors)


class PrefixStore:
    """Prefix caches by their tokens, the least recently used dropped past `budget` bytes.
    Callers copy a cache before extending it: what is stored is never written to."""

    def __init__(self, budget: int = STORE_BYTES) -> None:
        self.budget = budget
        self._caches: OrderedDict[tuple[int, ...], tuple[Any, int]] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._caches)

    def longest(self, tokens: Sequence[int], minimum: int) -> tuple[int, Any] | None:
        """(length, cache) of the longest stored prefix of `tokens` with at least `minimum`
        tokens, or None."""
        tokens = tuple(tokens)
        found = max(
            (key for key in self._caches if minimum <= len(key) <= len(tokens) and tokens[: len(key)] == key),
            key=len,
            default=None,
        )
        if found is None:
            return None
        self._caches.move_to_end(found)
        self.hits += 1
        return len(found), self._caches[found][0]

    def put(self, tokens: Sequence[int], cache: Any) -> None:
        """Keep `cache` as the prefix cache of `tokens` (if it fits the budget at all)."""
        size = cache_bytes(cache)
        if size > self.budget:
            return
        self._caches[tuple(tokens)] = (cache, size)
        while sum(s for _, s in self._caches.values()) > self.budget:
            self._caches.popitem(last=False)

    def clear(self) -> None:
        """Drop every stored cache."""
        self._caches.clear()
