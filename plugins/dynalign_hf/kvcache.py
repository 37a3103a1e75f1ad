"""A key/value cache that grows in place while sampling.

transformers' `DynamicLayer` concatenates every new token's keys and values onto the cache, so
each decode step copies the whole cache of every layer into a freshly allocated tensor. On a
CPU whose allocator hands large blocks back to the system, every copy also faults its pages in
again: in a fresh process on a 2-core AVX2 machine that was a fifth of a decode step (in the
GRPO trainer, whose allocator reuses what the backward pass freed, it made no measurable
difference; BENCHMARKS.md, "Round 3"). The layer here keeps keys and values in a buffer with
room for the tokens still to come and writes each new token into it; attention reads a view of
the filled part, the same numbers in the same order, so sampling is unchanged token for token.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A `DynamicLayer` whose `keys` / `values` are views of buffers with `reserve` free
    positions; a buffer is reallocated only when it is full (then with twice the room) or when
    something replaced the views (batch selection, cropping, reordering)."""

    def __init__(self, reserve: int) -> None:
        super().__init__()
        self.reserve = max(int(reserve), 1)
        self._buffers: tuple[Any, Any] | None = None

    def _views_of_buffers(self, needed: int) -> bool:
        if self._buffers is None:
            return False
        key_buffer = self._buffers[0]
        return (
            needed <= key_buffer.shape[-2]
            and self.keys.data_ptr() == key_buffer.data_ptr()
            and self.keys.shape[:-2] == key_buffer.shape[:-2]
        )

    def _regrow(self, key_states: Any, value_states: Any, length: int, needed: int) -> None:
        import torch

        # a full buffer doubles, so an answer longer than the reserve still copies O(log n) times
        room = self.reserve if self._buffers is None else max(self.reserve, needed)
        buffers = []
        for old, new in ((self.keys, key_states), (self.values, value_states)):
            shape = (*new.shape[:-2], needed + room, new.shape[-1])
            buffer = torch.empty(shape, dtype=new.dtype, device=new.device)
            if length:
                buffer[..., :length, :].copy_(old)
            buffers.append(buffer)
        self._buffers = (buffers[0], buffers[1])

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Write the new tokens' keys and values after the cached ones; return all of them."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        needed = length + key_states.shape[-2]
        if not self._views_of_buffers(needed):
            self._regrow(key_states, value_states, length, needed)
        assert self._buffers is not None
        key_buffer, value_buffer = self._buffers
        key_buffer[..., length:needed, :].copy_(key_states)
        value_buffer[..., length:needed, :].copy_(value_states)
        self.keys, self.values = key_buffer[..., :needed, :], value_buffer[..., :needed, :]
        return self.keys, self.values

    def reset(self) -> None:
        """Drop the cached tokens and their buffers."""
        self._buffers = None
        super().reset()


def preallocate(cache: Any, reserve: int) -> Any:
    """Turn `cache`'s plain dynamic layers into `PreallocatedLayer`s holding the same tokens
    (copied once into buffers with `reserve` free positions); other layer kinds (sliding
    windows, static or quantized layers) stay as they are. Returns `cache`."""
    for index, layer in enumerate(cache.layers):
        if type(layer) is not DynamicLayer:
            continue
        grown = PreallocatedLayer(reserve)
        if layer.is_initialized and layer.get_seq_length() > 0:
            grown.update(layer.keys, layer.values)
        cache.layers[index] = grown
    return cache
