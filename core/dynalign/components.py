"""What every plugin component shares: a registered name, aliases, an `Options` model, and the
`RunContext` it is built in, through which it builds the components its options name (a judge
model, an agent) from a `ModelRef`.

Each implementation is a subclass of one kind's base (`ChatModel`, `PromptGenerator`,
`Rewarder`, `Optimizer`, `Stage`) with a short kebab-case `name` and a pydantic `Options`
model that forbids unknown keys; the core validates a config's `options` table against it
before constructing it. Modules defining components must not import torch at module level:
`dynalign plugins` loads them all and must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dynalign.errors import ConfigError, validation_message

if TYPE_CHECKING:
    from dynalign.registry import Registry
    from dynalign.values import ValueSpec

M = TypeVar("M", bound=BaseModel)
Locate = Callable[[str], str | None]


class Options(BaseModel):
    """Base of every component's options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelRef(BaseModel):
    """A model backend by name plus its options (the policy, a judge, an agent...)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    backend: str = "hf"
    options: dict[str, Any] = Field(default_factory=dict)


class Component:
    """Common base: a registered name, aliases, an `Options` model and the run context."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options | None = None, context: RunContext | None = None) -> None:
        self.options = options if options is not None else type(self).Options()
        self.context = context


def validate_options(
    cls: type[M], data: Mapping[str, Any], source: str, where: str = "", locate: Locate | None = None
) -> M:
    """`cls` validated from `data`; a ConfigError of one line locating the first error in
    `source` at `where` (or where `locate` says that key was set)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(source, exc, prefix=where, locate=locate)) from exc


@dataclass
class RunContext:
    """What a component may use of the run it belongs to: the value, the registry, the run
    directory (if any), the seed, where the config came from, and `say`, where a component
    reports a decision the user should see (one line). `locate` names where a config key was
    set when not in `source` (a `DYNALIGN_*` variable), for error lines."""

    value: ValueSpec
    registry: Registry
    run_dir: Path | None = None
    seed: int = 0
    source: str = "config"
    say: Callable[[str], None] = field(default=print, repr=False)
    locate: Locate | None = field(default=None, repr=False)

    def build(self, kind: str, name: str, options: Mapping[str, Any], where: str) -> Component:
        """Construct a component by kind and name, validating `options` (error at `where`)."""
        cls = self.registry.get(kind, name).obj
        return cls(validate_options(cls.Options, options, self.source, where, self.locate), self)

    def build_model(self, ref: ModelRef | Mapping[str, Any], where: str = "model") -> Any:
        """Construct a model backend (a `ChatModel`) from a `{backend, options}` reference."""
        ref = ref if isinstance(ref, ModelRef) else ModelRef.model_validate(ref)
        return self.build("model", ref.backend, ref.options, f"{where}.options")

    def check_model(self, ref: ModelRef, where: str) -> None:
        """Fail now on an unknown backend or bad options, without building the model (a
        component that builds its model on first use checks it at `config check`)."""
        cls = self.registry.get("model", ref.backend).obj
        validate_options(cls.Options, ref.options, self.source, f"{where}.options")
