"""File helpers every part of dynalign shares: atomic writes and strict JSON-lines reading."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dynalign.errors import DynalignError


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def numbered_jsonl(path: Path, error: type[DynalignError] = DynalignError, hint: str = "") -> list[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a JSON-lines file; a bad line
    raises `error` naming `path:line` (plus `hint`, e.g. what to fix)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise error(f"{path}:{number}: not valid JSON ({exc.msg}){hint}") from exc
    return rows


def read_jsonl_strict(path: Path, error: type[DynalignError] = DynalignError, hint: str = "") -> list[Any]:
    """The parsed non-blank lines of a JSON-lines file (see `numbered_jsonl`)."""
    return [row for _, row in numbered_jsonl(path, error, hint)]
