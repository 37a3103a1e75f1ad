"""Phase 2 of config checking: turn a RunConfig into constructed components (a Stack)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynalign.config import RunConfig
from dynalign.errors import ConfigError
from dynalign.interfaces import ChatModel, Optimizer, PromptGenerator, RunContext, Stage, WeightedRewarder
from dynalign.plugins import get_registry
from dynalign.registry import Registry
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


def model_refs(data: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every `{backend, options}` table anywhere in a config's data (policy, judges, agents...)."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(data, dict):
        if isinstance(data.get("backend"), str) and isinstance(data.get("options", {}), dict):
            found.append((where or "model", data))
        for key, item in data.items():
            found += model_refs(item, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += model_refs(item, f"{where}[{index}]")
    return found


def preflight(config: RunConfig, context: RunContext, section: str | None = None) -> None:
    """Before any work: every model the config (or only its `section`, e.g. "prompts") names
    passes its `preflight` (e.g. its API key variable is set)."""
    data = config.model_dump(mode="json")
    for where, ref in model_refs(data[section] if section else data, section or ""):
        context.build_model({"backend": ref["backend"], "options": ref.get("options", {})}, where).preflight()


def resolve(config: RunConfig, registry: Registry | None = None, source: str = "config") -> Stack:
    """Look up every component the config names and validate its options."""
    registry = registry or get_registry()
    value: ValueSpec = registry.get("value", config.value).obj
    if config.teacher is not None:
        try:
            value = value.with_teacher(config.teacher)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
    context = RunContext(value=value, registry=registry, seed=config.seed, source=source)
    policy = context.build_model(config.policy, where="policy")
    generator = context.build("prompt_generator", config.prompts.generator, config.prompts.options, "prompts.options")
    rewarders = [
        WeightedRewarder(context.build("rewarder", ref.name, ref.options, f"rewarders[{i}].options"), ref.weight)  # type: ignore[arg-type]
        for i, ref in enumerate(config.rewarders)
    ]
    optimizer = context.build("optimizer", config.optimizer.name, config.optimizer.options, "optimizer.options")
    stages = [
        context.build("stage", ref.name, ref.options, f"stages[{i}].options") for i, ref in enumerate(config.stages)
    ]
    return Stack(config, context, policy, generator, rewarders, optimizer, stages)  # type: ignore[arg-type]
