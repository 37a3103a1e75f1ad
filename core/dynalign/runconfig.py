"""The shape of a run configuration: which value, policy, prompts, rewarders, optimizer and
stages, for how long (plain data; `dynalign.config` loads one from a file and the environment)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dynalign.components import ModelRef
from dynalign.models import DEFAULT_POLICY


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PromptsRef(_Section):
    """The prompt source by name plus its options."""

    generator: str = "file"
    options: dict[str, Any] = Field(default_factory=dict)
    refresh: bool = Field(False, description="Ask the generator for new training prompts each round after the first.")


class ComponentRef(_Section):
    """A component by name plus its options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class RewarderRef(ComponentRef):
    """A rewarder with the weight of its score in the total reward."""

    weight: float = 1.0
    allow_negative_weight: bool = Field(
        False, description="A negative weight trains away from what the rewarder rewards; say so to use one."
    )

    @model_validator(mode="after")
    def _negative_only_on_purpose(self) -> RewarderRef:
        if self.weight < 0 and not self.allow_negative_weight:
            raise ValueError(
                f"weight {self.weight:g} is negative, which trains the policy away from what {self.name!r} "
                "rewards; if that is intended, also set allow_negative_weight = true"
            )
        return self


class RunConfig(_Section):
    """The whole run: which value, policy, prompts, rewarders and optimizer, for how long."""

    value: str = "collective-agency"
    seed: int = 0
    rounds: int = Field(1, ge=1)
    output_dir: Path | None = None
    policy: ModelRef = Field(default_factory=lambda: ModelRef(options={"model": DEFAULT_POLICY}))
    prompts: PromptsRef = Field(default_factory=PromptsRef)
    rewarders: list[RewarderRef] = Field(default_factory=lambda: [RewarderRef(name="self-reward")], min_length=1)
    optimizer: ComponentRef = Field(default_factory=lambda: ComponentRef(name="grpo"))
    stages: list[ComponentRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _weights_can_train(self) -> RunConfig:
        if not math.isclose(sum(r.weight for r in self.rewarders), 0.0, abs_tol=1e-12):
            return self
        raise ValueError("rewarder weights sum to 0, so every reward would be 0; give a rewarder a non-zero weight")
