"""The hooks a dynalign plugin implements.

Every hook receives one argument, `register`: a callable the plugin calls once per component
it provides. Registration happens when the plugin manager asks, never as a side effect of
importing a module. Each hook is documented in README.md under its own heading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("dynalign")
hookimpl = pluggy.HookimplMarker("dynalign")

Register = Callable[..., None]


@hookspec
def register_values(register: Register) -> None:
    """Register values: `register(spec)` with a `dynalign.values.ValueSpec`.

    Aliases come from the spec's own `aliases` field.
    """


@hookspec
def register_models(register: Register) -> None:
    """Register chat backends: `register(cls, aliases=())` with a `ChatModel` subclass."""


@hookspec
def register_prompt_generators(register: Register) -> None:
    """Register prompt sources: `register(cls, aliases=())` with a `PromptGenerator` subclass."""


@hookspec
def register_rewarders(register: Register) -> None:
    """Register rewarders: `register(cls, aliases=())` with a `Rewarder` subclass."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers: `register(cls, aliases=())` with an `Optimizer` subclass."""


@hookspec
def register_stages(register: Register) -> None:
    """Register post-training stages: `register(cls, aliases=())` with a `Stage` subclass.

    A config lists the stages `dynalign run` runs after the last round (e.g. eval, report).
    """


@hookspec
def register_commands(register: Register) -> None:
    """Register CLI commands: `register(typer_app_or_function, name=None)`.

    A `typer.Typer` becomes a command group; a plain function becomes one command.
    """


HOOK_NAMES: tuple[str, ...] = tuple(
    name for name, obj in list(globals().items()) if name.startswith("register_") and callable(obj)
)

__all__: list[Any] = ["hookimpl", "hookspec", "HOOK_NAMES", "Register"]
