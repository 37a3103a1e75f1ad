"""The call cache every judge path keeps of a model's answers (verdicts, agents' replies), and
the key it files them under (`call_key`).

Answers are kept in memory and, with a file, appended to it as JSON lines, each batch written
and fsynced together, so a kill loses at most that batch and a rerun asks nothing twice. A
torn last line (a kill mid-write) is skipped and ended, so the next append starts on its own
line. None is never stored: a missing answer is asked again.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dynalign.files import end_line
from dynalign.measured import digest


def call_key(*parts: Any) -> str:
    """A stable key for a call made of JSON-able parts (`dynalign.measured.digest`, shortened)."""
    return digest(list(parts))[:32]


class CallCache:
    """Answers by key, in memory and (with a `path`) in a JSON-lines file of `{"key", field}` rows.

    A disabled cache stores and finds nothing. `hits` and `misses` count lookups.
    """

    def __init__(self, path: Path | None = None, *, field: str = "answer", enabled: bool = True) -> None:
        self.path = path if enabled else None
        self.field = field
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self._answers: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, Any]:
        if self._answers is None:
            answers: dict[str, Any] = {}
            if self.path is not None and self.path.exists():
                end_line(self.path)
                for line in self.path.read_text(encoding="utf-8").splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:  # a torn last line from a kill
                        continue
                    if isinstance(row, dict) and "key" in row:
                        answers[row["key"]] = row.get(self.field)
            self._answers = answers
        return self._answers

    def __len__(self) -> int:
        return len(self._loaded())

    def get(self, key: str) -> Any:
        """The stored answer, or None."""
        found = self._loaded().get(key) if self.enabled else None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: str, answer: Any) -> None:
        """Store one answer (None is not stored)."""
        self.put_many([(key, answer)])

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        """Store answers; written and fsynced together so a kill loses at most this batch."""
        items = [(k, a) for k, a in items if a is not None]
        if not items or not self.enabled:
            return
        with self._lock:
            self._loaded().update(items)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write("".join(json.dumps({"key": k, self.field: a}) + "\n" for k, a in items))
                    handle.flush()
                    os.fsync(handle.fileno())
