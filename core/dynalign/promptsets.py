"""Prompt datasets and the `PromptGenerator` kind that makes them from a value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from dynalign.components import Component

if TYPE_CHECKING:
    from dynalign.values import ValueSpec


class PromptRecord(BaseModel):
    """One task prompt with its provenance (goal, pillar, critic score, ...)."""

    model_config = ConfigDict(extra="allow")

    id: str
    prompt: str = Field(min_length=1)
    pillar: str | None = None


class PromptSet(BaseModel):
    """A prompt dataset split into training and held-out prompts (disjoint)."""

    train: list[PromptRecord]
    held_out: list[PromptRecord] = []


class PromptGenerator(Component):
    """Makes the prompt dataset for a value."""

    kind = "prompt_generator"

    def generate(self, value: ValueSpec) -> PromptSet:
        """Return the training and held-out prompts for `value`."""
        raise NotImplementedError

    def refresh(
        self, value: ValueSpec, previous: list[PromptRecord], weakness: dict[str, float], round_index: int
    ) -> list[PromptRecord]:
        """Training prompts for round `round_index` (> 0) when the config asks for a refresh.

        `weakness` maps each pillar to how much the policy lagged on it last round (0..1,
        higher = weaker), from the rewarders' per-pillar diagnostics; a generator may use it
        to emphasise those pillars. Default: keep the previous round's prompts.
        """
        return previous
