"""glibc's allocator keeping freed memory while a CPU training run without checkpointing goes on.

Without gradient checkpointing a GRPO step's loss pass keeps every layer's activations for
the backward pass (about 0.9 GB for the demo) and frees them after it, every step. glibc hands
memory freed at the top of its heap back to the system once more than `M_TRIM_THRESHOLD` is
free there, so the next step faults all those pages in again (the kernel zeroes each one).
Raising the threshold for the run keeps the freed memory for the next step: on a 2-core Xeon
the demo's step took 0.85x the time with it (BENCHMARKS.md, issue 20 round 9), where turning
checkpointing off alone gained nothing. Setting a threshold also fixes glibc's otherwise
adaptive `M_MMAP_THRESHOLD`, so that is set too, to the adaptive one's ceiling. When the run
ends, `malloc_trim` returns what the heap holds free, so later stages (the eval) start lean.
Other C libraries (musl, macOS) are left as they are.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
KEPT_BYTES = 1 << 30  # free memory the heap may keep at its top while the run goes on
MMAP_BYTES = 32 << 20  # blocks from this size up get their own mapping (glibc's adaptive ceiling, 64-bit)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library this process already runs on, when it is glibc (None elsewhere)."""
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: no library search
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


@contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """While entered, glibc keeps up to `KEPT_BYTES` of freed heap memory for reuse instead of
    returning it to the system; yields whether that took effect (False off glibc). On exit the
    free memory goes back to the system (the thresholds stay: glibc cannot make them adaptive
    again)."""
    libc = _glibc()
    kept = bool(
        libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) and libc.mallopt(M_TRIM_THRESHOLD, KEPT_BYTES)
    )
    try:
        yield kept
    finally:
        if libc is not None:
            libc.malloc_trim(0)
