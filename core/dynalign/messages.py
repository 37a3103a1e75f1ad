"""Chat messages as every component sees them: a conversation is a list of `{"role", "content"}`."""

from __future__ import annotations

from typing import Any

Message = dict[str, str]
Conversation = list[Message]


def with_system(conversation: Conversation, system: str | None) -> Conversation:
    """The conversation with its system message replaced by `system` (removed if None)."""
    rest = [m for m in conversation if m.get("role") != "system"]
    return ([{"role": "system", "content": system}] if system is not None else []) + rest


def _is_message(m: Any) -> bool:
    return isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)


def as_conversation(item: str | Conversation, role: str) -> Conversation:
    """A prompt (`role="user"`) or completion (`role="assistant"`) in the form rewarders
    receive: a string becomes one message; a list of `{"role": ..., "content": ...}` messages is
    checked and kept. Raises ValueError saying what is wrong."""
    if isinstance(item, str):
        return [{"role": role, "content": item}]
    if isinstance(item, list) and item and all(_is_message(m) for m in item):
        return item
    raise ValueError('must be a string or a non-empty list of {"role": ..., "content": ...} messages with text content')
