"""The one family of errors dynalign raises on purpose.

The CLI prints a `DynalignError` as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


def format_location(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as a dotted path: `optimizer.options.trl.learning_rate`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validation_message(
    source: str, exc: ValidationError, prefix: str = "", locate: Callable[[str], str | None] | None = None
) -> str:
    """One line for the first error of a ValidationError, located in `source` at its dotted
    place (under `prefix`), or where `locate` says that place was set (a run config's
    `DYNALIGN_*` variable)."""
    first = exc.errors()[0]
    where = format_location((*([prefix] if prefix else []), *first["loc"]))
    source = (locate(where) if locate is not None else None) or source
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: {where}: unknown option (check its spelling; `dynalign components` lists the options)"
    if kind == "missing":
        return f"{source}: {where}: required field is missing"
    return f"{source}: {where}: {first['msg']}"


class DynalignError(Exception):
    """Base of every error the user can fix: the message says what to fix."""

    exit_code = 1


class ConfigError(DynalignError):
    """A config file, option or environment override is malformed."""

    exit_code = 2


class PluginError(DynalignError):
    """A plugin failed to load, conflicts with another, or registered the wrong type."""


class UnknownComponentError(ConfigError):
    """A config names a component that no installed plugin registers."""


class RewarderError(DynalignError):
    """A rewarder broke its contract: the wrong number or type of scores, or bad metric keys."""


class ValueSpecError(DynalignError):
    """A value file is missing a field or holds an invalid one."""


class RunDirectoryError(DynalignError):
    """The run directory holds another run, or its state cannot be read."""


class ModelError(DynalignError):
    """A model backend cannot load or answer (missing path, unreachable server, ...)."""


class UnsupportedError(DynalignError):
    """A component was asked for something its backend cannot do."""


class JudgeError(DynalignError):
    """A judge (a rewarder's, the judge-check's, the eval's) that cannot produce valid verdicts."""
