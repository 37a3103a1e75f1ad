"""File helpers every part of dynalign shares: reading user files, atomic writes and strict
JSON-lines reading.

Every problem with a file the user gave (not UTF-8, a folder where a file is expected or the
reverse, unreadable, read-only, truncated JSON) becomes one `DynalignError` line naming the
file and what to do; `file_error` words an `OSError` so, and the CLI applies it to any
`OSError` that escapes a command.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from dynalign.errors import DynalignError

_HINTS: dict[type[OSError], str] = {
    IsADirectoryError: "it is a folder; give a file",
    NotADirectoryError: "a part of the path is a file, not a folder; give a folder",
    FileExistsError: "it exists and is a file; give a folder",
    FileNotFoundError: "it does not exist",
    PermissionError: "permission denied; choose a location you can read and write",
}


_LOOP = "it is a symbolic link that leads back to itself (a loop); point the link at a real file"


def file_error(exc: OSError, path: Path | str | None = None) -> str:
    """One line for a failed file operation: the file, what went wrong and what to do."""
    name = exc.filename if exc.filename is not None else path
    hint = _LOOP if exc.errno == errno.ELOOP else None
    hint = hint or next((text for kind, text in _HINTS.items() if isinstance(exc, kind)), None)
    reason = hint or (exc.strerror or str(exc)).lower()
    return f"{name}: {reason}" if name is not None else f"file error: {reason}"


def require_file(path: Path | str, what: str, error: type[DynalignError] = DynalignError, hint: str = "") -> None:
    """Raise `error` unless `path` leads to something: `<what> PATH does not exist` (+ `hint`),
    or, for a symbolic link, that it is a loop or points nowhere."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise error(f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist") from None
        raise error(f"{what} {path} does not exist{hint}") from None
    except OSError as exc:
        raise error(f"{what} {file_error(exc, path)}") from exc


def read_text(path: Path | str, error: type[DynalignError] = DynalignError) -> str:
    """The text of a UTF-8 file (a leading byte-order mark is dropped); any problem raises
    `error` with one line naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise error(file_error(exc, path)) from exc


def read_json(path: Path | str, error: type[DynalignError] = DynalignError, hint: str = "") -> Any:
    """A JSON file's content; invalid or truncated JSON raises `error` naming the file (+ `hint`)."""
    try:
        return json.loads(read_text(path, error))
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); it may be truncated{hint}") from exc


def ensure_folder(path: Path, error: type[DynalignError] = DynalignError) -> Path:
    """Create `path` (and parents) as a folder; a file in the way or no permission raises `error`."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(file_error(exc, path)) from exc
    return Path(path)


def check_writable(path: Path, folder: bool = False, error: type[DynalignError] = DynalignError) -> None:
    """Before any work: raise `error` unless `path` can be written as a file (or, with
    `folder`, created as a folder): not a folder (a file), no file on its way, writable."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise error(f"{path}: {_HINTS[IsADirectoryError if path.is_dir() else FileExistsError]}")
    parent = path if folder else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise error(f"{parent}: {_HINTS[NotADirectoryError]}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{parent}: {_HINTS[PermissionError]}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never half."""
    path = Path(path)
    if path.is_dir():
        raise DynalignError(f"{path}: {_HINTS[IsADirectoryError]}")
    ensure_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise DynalignError(file_error(exc, path.parent)) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def numbered_jsonl(
    path: Path, error: type[DynalignError] = DynalignError, hint: str = "", objects: bool = True
) -> list[tuple[int, Any]]:
    """(line number, parsed value) for every non-blank line of a JSON-lines file; a bad line
    (or, with `objects`, one that is not a JSON object) raises `error` naming `path:line`
    (plus `hint`, e.g. what to fix)."""
    rows = []
    for number, line in enumerate(read_text(path, error).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{path}:{number}: not valid JSON ({exc.msg}){hint}") from exc
        if objects and not isinstance(row, dict):
            raise error(f"{path}:{number}: each line must be a JSON object ({{...}}), not {type(row).__name__}{hint}")
        rows.append((number, row))
    return rows


def read_jsonl_strict(
    path: Path, error: type[DynalignError] = DynalignError, hint: str = "", objects: bool = True
) -> list[Any]:
    """The parsed non-blank lines of a JSON-lines file (see `numbered_jsonl`)."""
    return [row for _, row in numbered_jsonl(path, error, hint, objects)]


def end_line(path: Path) -> None:
    """Terminate a torn last line (a kill mid-write) so the next append starts on its own line."""
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
