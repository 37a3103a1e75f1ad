"""The `Optimizer` kind: turns prompts and rewarders into an updated policy, one round at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dynalign.components import Component
from dynalign.models import ChatModel
from dynalign.promptsets import PromptRecord
from dynalign.rewards import WeightedRewarder

if TYPE_CHECKING:
    from dynalign.values import ValueSpec


@dataclass
class TrainRequest:
    """Everything an optimizer needs for one round of training."""

    policy: ChatModel
    prompts: list[PromptRecord]
    rewarders: list[WeightedRewarder]
    value: ValueSpec
    output_dir: Path
    round_index: int
    resume: bool
    on_metrics: Callable[[dict[str, Any]], None]
    on_rewind: Callable[[int], None] = lambda step: None  # drop this round's metrics after `step`
    on_time: Callable[[str, float], None] = lambda name, seconds: None  # wall time of a phase of the round
    seed: int = 0


@dataclass
class TrainResult:
    """Where the round's final policy was written and how many optimizer steps it took."""

    model_dir: Path
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)


class Optimizer(Component):
    """Turns prompts and rewarders into an updated policy."""

    kind = "optimizer"

    def check(self, policy: ChatModel, value: ValueSpec) -> None:
        """Validate settings that only the backend library can judge, without training."""

    def train(self, request: TrainRequest) -> TrainResult:
        """Run one round of training and return the trained policy's location."""
        raise NotImplementedError
