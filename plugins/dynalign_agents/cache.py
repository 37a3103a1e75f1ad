"""Agents: model backends behind an on-disk call cache and a shared failure budget.

Every answered call is appended to a JSON-lines cache keyed by a hash of (model description,
messages, generation parameters, call id). The pipeline is deterministic given the answers,
so replaying it from the start after a kill reuses every answered call and makes no repeated
request. Empty answers are cached too (so a resume repeats nothing), but only fresh answers
count against the failure budget.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from dynalign.errors import ModelError
from dynalign.interfaces import ChatModel, Conversation, GenerationParams


class EmptyOutputError(ModelError):
    """A model returned empty or non-text output more often in a row than the failure budget allows."""


def describe_model(model: ChatModel) -> str:
    """A short, stable description of a backend (`hf:embedded:smollm2-135m-instruct`)."""
    described = dict(model.describe())
    backend = described.pop("backend", model.name)
    main = described.pop("model", None)
    return ":".join(str(part) for part in (backend, main) if part is not None)


def end_line(path: Path) -> None:
    """Terminate a torn last line (a kill mid-write) so the next append starts on its own line."""
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


class CallCache:
    """Answers by key, kept in memory and (with a path) appended to a JSON-lines file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._answers: dict[str, Any] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            end_line(path)
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a torn last line from a kill
                    continue
                self._answers[row["key"]] = row["answer"]

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> Any:
        """The cached answer, or None."""
        return self._answers.get(key)

    def put_many(self, items: list[tuple[str, Any]]) -> None:
        """Store answers; written and fsynced together so a kill loses at most this batch."""
        if not items:
            return
        with self._lock:
            self._answers.update(items)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write("".join(json.dumps({"key": k, "answer": a}) + "\n" for k, a in items))
                    handle.flush()
                    os.fsync(handle.fileno())


class FailureBudget:
    """Counts empty answers in a row across all agents; raises when the budget is spent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0

    def record(self, ok: bool, role: str, model: str) -> None:
        """Note one answer; raise EmptyOutputError after `limit` empty ones in a row."""
        self.in_a_row = 0 if ok else self.in_a_row + 1
        if self.in_a_row >= self.limit:
            raise EmptyOutputError(
                f"the {role} agent ({model}) returned empty or non-text output {self.in_a_row} times in a row "
                "(failure_budget); check the model or endpoint"
            )


class Agent:
    """One role's model, asked through the cache; counts calls made and answers reused."""

    def __init__(self, role: str, model: ChatModel, cache: CallCache, budget: FailureBudget) -> None:
        self.role, self.model, self.cache, self.budget = role, model, cache, budget
        self.description = describe_model(model)
        self.calls = 0
        self.reused = 0

    def _key(self, kind: str, call_id: str, conversation: Conversation, extra: dict[str, Any]) -> str:
        blob = json.dumps(
            {"model": self.model.describe(), "kind": kind, "call": call_id, "messages": conversation, **extra},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def chat(self, requests: list[tuple[str, Conversation]], params: GenerationParams) -> list[str | None]:
        """One text answer per (call id, conversation); None where the model gave no text."""
        keys = [self._key("chat", cid, conv, {"params": params.model_dump()}) for cid, conv in requests]
        answers: list[Any] = [self.cache.get(k) for k in keys]
        missing = [i for i, a in enumerate(answers) if a is None]
        self.reused += len(requests) - len(missing)
        if missing:
            self.calls += len(missing)
            replies = self.model.chat([requests[i][1] for i in missing], params.model_copy(update={"n": 1}))
            for i, reply in zip(missing, replies):
                text = reply[0] if reply and isinstance(reply[0], str) else ""
                answers[i] = text.strip()
            self.cache.put_many([(keys[i], answers[i]) for i in missing])
            for i in missing:  # only fresh answers count: replayed empties must not block a resume
                self.budget.record(bool(answers[i]), self.role, self.description)
        return [answer or None for answer in answers]

    def probs(
        self, requests: list[tuple[str, Conversation]], choices: list[str], prefix: str
    ) -> list[dict[str, float]]:
        """Next-token probabilities of `choices` after `prefix`, per conversation (cached)."""
        extra = {"choices": choices, "prefix": prefix}
        keys = [self._key("probs", cid, conv, extra) for cid, conv in requests]
        answers: list[Any] = [self.cache.get(k) for k in keys]
        missing = [i for i, a in enumerate(answers) if a is None]
        self.reused += len(requests) - len(missing)
        if missing:
            self.calls += len(missing)
            fresh = self.model.next_token_probs([requests[i][1] for i in missing], choices, prefix)
            for i, answer in zip(missing, fresh):
                answers[i] = answer
            self.cache.put_many([(keys[i], answers[i]) for i in missing])
        return answers
