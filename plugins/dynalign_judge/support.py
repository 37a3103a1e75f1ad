"""What the `judge` and `negotiation` rewarders share: reading TRL inputs, grouping candidates by
prompt, the on-disk judgment cache and the failure budget."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dynalign.config import ModelRef, validation_message
from dynalign.errors import ConfigError, DynalignError
from dynalign.rundir import RunDirectory


class JudgeError(DynalignError):
    """A judge or negotiation that cannot produce valid verdicts."""


def check_model_ref(context: Any, ref: ModelRef, where: str) -> None:
    """Fail at config-check time on an unknown backend or bad options, without building the model
    (it is built on first use)."""
    cls = context.registry.get("model", ref.backend).obj
    try:
        cls.Options.model_validate(ref.options)
    except ValidationError as exc:
        raise ConfigError(validation_message(context.source, exc, prefix=f"{where}.options")) from exc


def group_indices(prompts: Sequence[str]) -> list[list[int]]:
    """Indices of completions sharing a prompt, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(index)
    return list(groups.values())


def digest(*parts: Any) -> str:
    """A stable key for JSON-able parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class JudgmentCache:
    """Verdicts by key, kept in memory and appended to a JSON-lines file (when there is a folder).

    Only valid verdicts are stored, so an invalid one is asked again next time. A disabled
    cache stores nothing.
    """

    def __init__(self, folder: Path | None, filename: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self._run = RunDirectory(folder) if folder is not None and enabled else None
        self._file = filename
        self._data: dict[str, Any] | None = None
        self.hits = 0
        self.misses = 0

    def _loaded(self) -> dict[str, Any]:
        if self._data is None:
            rows = self._run.read_jsonl(self._file) if self._run else []
            self._data = {row["key"]: row["verdict"] for row in rows if "key" in row}
        return self._data

    def get(self, key: str) -> Any:
        """The stored verdict, or None."""
        found = self._loaded().get(key) if self.enabled else None
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: str, verdict: Any) -> None:
        """Store a valid verdict."""
        if verdict is None or not self.enabled:
            return
        self._loaded()[key] = verdict
        if self._run is not None:
            self._run.append_jsonl(self._file, {"key": key, "verdict": verdict})


class FailureBudget:
    """Stops a judge that keeps failing: `limit` invalid judgments in a row raise a JudgeError."""

    def __init__(self, limit: int, who: str) -> None:
        self.limit = limit
        self.who = who
        self.in_a_row = 0
        self.total = 0

    def record(self, valid: bool, reply: str = "") -> None:
        """Count one judgment; raise once `limit` invalid ones came in a row."""
        if valid:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            snippet = " ".join(reply.split())[:80]
            raise JudgeError(
                f"{self.who} gave no valid verdict in {self.in_a_row} judgments in a row "
                f"({self.total} invalid in all; failure_budget = {self.limit}); last reply: {snippet!r}; "
                "check the judge model, its endpoint and max_new_tokens"
            )
