"""Agents: model backends behind an on-disk call cache and a shared failure budget (both
`dynalign.api`'s: `CallCache`, `FailureBudget`).

Every answered call is appended to a JSON-lines cache keyed by a hash of (model description,
messages, generation parameters, call id). The pipeline is deterministic given the answers,
so replaying it from the start after a kill reuses every answered call and makes no repeated
request. Empty answers are cached too (so a resume repeats nothing), but only fresh answers
count against the failure budget.
"""

from __future__ import annotations

from typing import Any

from dynalign.api import CallCache, ChatModel, Conversation, FailureBudget, GenerationParams, ModelError, digest


class EmptyOutputError(ModelError):
    """A model returned empty or non-text output more often in a row than the failure budget allows."""


def empty_output_budget(limit: int) -> FailureBudget:
    """The budget all agents share: `limit` empty answers in a row stop the generation."""
    return FailureBudget(
        limit,
        "an agent",
        error=EmptyOutputError,
        failure="returned empty or non-text output",
        fix="check the model or endpoint",
    )


def describe_model(model: ChatModel) -> str:
    """A short, stable description of a backend (`hf:embedded:smollm2-135m-instruct`)."""
    described = dict(model.describe())
    backend = described.pop("backend", model.name)
    main = described.pop("model", None)
    return ":".join(str(part) for part in (backend, main) if part is not None)


class Agent:
    """One role's model, asked through the cache; counts calls made and answers reused."""

    def __init__(self, role: str, model: ChatModel, cache: CallCache, budget: FailureBudget) -> None:
        self.role, self.model, self.cache, self.budget = role, model, cache, budget
        self.description = describe_model(model)
        self.calls = 0
        self.reused = 0

    def _key(self, kind: str, call_id: str, conversation: Conversation, extra: dict[str, Any]) -> str:
        return digest(
            {"model": self.model.describe(), "kind": kind, "call": call_id, "messages": conversation, **extra}
        )

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
                self.budget.record(bool(answers[i]), answers[i], f"the {self.role} agent ({self.description})")
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
