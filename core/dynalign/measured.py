"""Measure once: results of measuring a model that has not changed, cached by content.

A measurement (a self-signal's accuracy on a value's pairs, the base model's side of the
efficacy eval) is a pure function of the model's weights, the data, the measurement's
definition and the libraries that compute it. Its key is a fingerprint of all of them (the
versions of dynalign, torch and transformers); the result is kept as JSON in
`$DYNALIGN_CACHE_DIR/measurements/` (default `~/.cache/dynalign`), so a resume, a second run
or a benchmark seed reuses it and says so. `DYNALIGN_NO_CACHE=1` (`dynalign run --no-cache`)
measures afresh and overwrites the cached copy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dynalign.errors import DynalignError
from dynalign.files import atomic_write_text

T = TypeVar("T")
NO_CACHE_ENV = "DYNALIGN_NO_CACHE"


def cache_root() -> Path:
    """dynalign's cache folder: $DYNALIGN_CACHE_DIR, else ~/.cache/dynalign."""
    return Path(os.environ.get("DYNALIGN_CACHE_DIR") or Path.home() / ".cache" / "dynalign")


def caching_enabled() -> bool:
    """False when DYNALIGN_NO_CACHE is set to anything but 0/false/empty."""
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() in ("", "0", "false", "no")


def digest(data: Any) -> str:
    """A stable hex digest of JSON-ready data (keys sorted): the one key of every cache."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def folder_fingerprint(folder: str | Path) -> str:
    """The identity of a model folder: its resolved path and every file's name, size and
    modification time (a re-saved or changed model gets a new fingerprint; nothing is read)."""
    root = Path(folder).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return digest([str(root), [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]])


def measure_once(
    kind: str,
    key: dict[str, Any] | None,
    compute: Callable[[], T],
    *,
    say: Callable[[str], None] | None = None,
    label: str | None = None,
) -> T:
    """`compute()`, or its cached result for the same `kind` and `key` (saying so, as
    `label`). A None key (an identity that cannot be fingerprinted, such as a remote model)
    always computes."""
    from dynalign.rundir import package_versions

    if key is None:
        return compute()
    # the libraries that compute the numbers are part of what was measured
    versions = package_versions(("dynalign", "torch", "transformers"))
    name = f"{kind}-{digest({'kind': kind, 'versions': versions, **key})[:24]}.json"
    path = cache_root() / "measurements" / name
    if caching_enabled() and path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = None  # a damaged entry is measured again and replaced
        if isinstance(found, dict) and "result" in found:
            if say:
                say(f"{label or kind}: reused the cached measurement ({NO_CACHE_ENV}=1 or --no-cache measures again)")
            return found["result"]
    result = compute()
    try:
        atomic_write_text(path, json.dumps({"kind": kind, "key": key, "result": result}, default=str) + "\n")
    except DynalignError:
        pass  # an unwritable cache costs only the time to measure again
    return result
