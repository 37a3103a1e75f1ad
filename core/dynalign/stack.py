"""The `Stack` (the components a config selects, constructed and validated) and the `Stage` kind,
which does its work on a stack and its run directory. Open a stack with
`dynalign.opening.open_stack`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dynalign.components import Component, RunContext
from dynalign.models import ChatModel
from dynalign.promptsets import PromptGenerator
from dynalign.rewards import WeightedRewarder
from dynalign.training import Optimizer

if TYPE_CHECKING:
    from dynalign.runconfig import RunConfig
    from dynalign.rundir import RunDirectory
    from dynalign.values import ValueSpec


@dataclass
class Stack:
    """The components a config selects, constructed and validated (nothing loaded yet)."""

    config: RunConfig
    context: RunContext
    policy: ChatModel
    generator: PromptGenerator
    rewarders: list[WeightedRewarder]
    optimizer: Optimizer
    stages: list[Stage]

    @property
    def value(self) -> ValueSpec:
        """The value this run aligns to."""
        return self.context.value

    def policy_at(self, model: str | Path) -> ChatModel:
        """The policy backend with the same options but weights from `model` (a later round)."""
        ref = self.config.policy.model_copy(deep=True)
        ref.options["model"] = str(model)
        return self.context.build_model(ref, where="policy")

    def stage_options(self, name: str) -> dict[str, Any]:
        """The options the config gives the stage `name` (empty if it lists none)."""
        return next((dict(ref.options) for ref in self.config.stages if ref.name == name), {})


class Stage(Component):
    """A step `dynalign run` takes after training (evaluation, report), in config order."""

    kind = "stage"
    before_training: ClassVar[bool] = False  # True: runs after the prompts, before round 1

    def run(self, stack: Stack, run_dir: RunDirectory, say: Callable[[str], None]) -> None:
        """Do the stage's work for a run, writing results into its run directory."""
        raise NotImplementedError
