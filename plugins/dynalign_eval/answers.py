"""Greedy answers of a model to plain user prompts, made once per model and settings.

Every eval section that compares base and aligned answers asks for them here: greedy
decoding is deterministic, so the base model's answers to the same prompts are reused from
the measurement cache (`dynalign.measured`) by every later eval of the same base model.
"""

from __future__ import annotations

from collections.abc import Callable

from dynalign.api import ChatModel, GenerationParams, measure_once


def greedy_answers(
    model: ChatModel,
    prompts: list[str],
    max_new_tokens: int,
    seed: int = 0,
    say: Callable[[str], None] | None = None,
    label: str = "eval: answers",
) -> list[str]:
    """One greedy answer per prompt, without any system prompt (the question is whether
    training moved the model itself)."""
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)

    def answer() -> list[str]:
        return [reply[0] for reply in model.chat([[{"role": "user", "content": p}] for p in prompts], params)]

    identity = model.fingerprint()
    key = (
        None if identity is None else {"model": identity, "prompts": prompts, "params": params.model_dump(mode="json")}
    )
    return measure_once("answers", key, answer, say=say, label=label)
