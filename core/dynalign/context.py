"""RunContext: what a component may use of the run it belongs to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dynalign.config import ModelRef, validation_message
from dynalign.errors import ConfigError

if TYPE_CHECKING:
    from dynalign.interfaces import ChatModel, Component
    from dynalign.registry import Registry
    from dynalign.values import ValueSpec


@dataclass
class RunContext:
    """The value, the registry, the run directory (if any), the seed, where config came from,
    and `say`, where a component reports a decision the user should see (one line)."""

    value: ValueSpec
    registry: Registry
    run_dir: Path | None = None
    seed: int = 0
    source: str = "config"
    say: Callable[[str], None] = field(default=print, repr=False)  # one-line progress and decisions

    def build(self, kind: str, name: str, options: dict[str, Any], where: str) -> Component:
        """Construct a component by kind and name, validating `options` (error at `where`)."""
        cls = self.registry.get(kind, name).obj
        try:
            parsed = cls.Options.model_validate(options)
        except ValidationError as exc:
            raise ConfigError(validation_message(self.source, exc, prefix=where)) from exc
        return cls(parsed, self)

    def build_model(self, ref: ModelRef | dict[str, Any], where: str = "model") -> ChatModel:
        """Construct a model backend from a `{backend, options}` reference."""
        ref = ref if isinstance(ref, ModelRef) else ModelRef.model_validate(ref)
        return self.build("model", ref.backend, ref.options, f"{where}.options")  # type: ignore[return-value]
