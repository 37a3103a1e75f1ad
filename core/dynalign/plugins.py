"""Plugin discovery: entry points of the `dynalign` group, called through pluggy hooks.

A plugin that fails to import or raises in a hook is recorded with its error (shown by
`dynalign plugins`) and its partial registrations are dropped; it is fatal only when a
config asks for one of its components. `DYNALIGN_LOAD_PLUGINS` (comma-separated
distribution names; empty means none) and `DYNALIGN_DISABLE_PLUGINS` select plugins.
"""

from __future__ import annotations

import importlib
import os
import traceback
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from dynalign import hookspecs
from dynalign.components import Component
from dynalign.errors import DynalignError, PluginError
from dynalign.models import ChatModel
from dynalign.promptsets import PromptGenerator
from dynalign.registry import Entry, PluginInfo, Registry
from dynalign.rewards import Rewarder
from dynalign.stack import Stage
from dynalign.training import Optimizer
from dynalign.values import ValueSpec

GROUP = "dynalign"
_HOOK_KINDS = {
    "register_values": "value",
    "register_models": "model",
    "register_prompt_generators": "prompt_generator",
    "register_rewarders": "rewarder",
    "register_optimizers": "optimizer",
    "register_stages": "stage",
}
COMPONENT_BASES: dict[str, type[Component]] = {
    "model": ChatModel,
    "prompt_generator": PromptGenerator,
    "rewarder": Rewarder,
    "optimizer": Optimizer,
    "stage": Stage,
}

_cached: Registry | None = None
_IMPORTLIB = os.path.dirname(importlib.__file__)


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _cached
    if _cached is None:
        _cached = load_registry()
    return _cached


def reset_registry() -> None:
    """Forget the process-wide registry (tests, or after installing a plugin)."""
    global _cached
    _cached = None


def _selected(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    load = os.environ.get("DYNALIGN_LOAD_PLUGINS")
    disable = {n.strip() for n in os.environ.get("DYNALIGN_DISABLE_PLUGINS", "").split(",") if n.strip()}
    keep = None if load is None else {n.strip() for n in load.split(",") if n.strip()}
    chosen = []
    for ep in eps:
        dist = ep.dist.name if ep.dist else ep.name
        if dist in disable or ep.name in disable:
            continue
        if keep is not None and dist not in keep and ep.name not in keep:
            continue
        chosen.append(ep)
    return chosen


def load_registry(extra_plugins: Iterable[tuple[str, ModuleType | object]] = ()) -> Registry:
    """Discover installed plugins (plus `extra_plugins` as (distribution, module) pairs) and
    fill a fresh Registry. Never raises for a broken plugin: it is recorded instead."""
    registry = Registry()
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(hookspecs)
    origins: dict[str, tuple[str, str | None]] = {}  # plugin name -> (distribution, entry point)
    for ep in _selected(entry_points(group=GROUP)):
        dist = ep.dist.name if ep.dist else ep.name
        info = registry.plugins.setdefault(dist, PluginInfo(dist, ep.dist.version if ep.dist else "0"))
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break the CLI
            info.status = import_failure(ep, dist, exc)
            continue
        try:
            manager.register(module, name=f"{dist}:{ep.name}")
        except Exception as exc:  # pluggy rejects hooks with unknown names or arguments
            info.status = f"invalid hooks in {ep.value}: {exc}"
            continue
        origins[f"{dist}:{ep.name}"] = (dist, f"{ep.name} = {ep.value}")
    for dist, module in extra_plugins:
        registry.plugins.setdefault(dist, PluginInfo(dist, "0"))
        manager.register(module, name=f"{dist}:extra")
        origins[f"{dist}:extra"] = (dist, None)
    for plugin_name, (dist, entry) in origins.items():
        _collect(registry, manager, plugin_name, dist, entry)
    return registry


def _collect(registry: Registry, manager: pluggy.PluginManager, plugin_name: str, dist: str, entry: str | None) -> None:
    """Call one plugin's hook implementations; keep its components only if all succeed. An
    entry point that registers nothing is an error: its hooks most likely lack `@hookimpl`."""
    info = registry.plugins[dist]
    staged: list[Entry] = []
    commands: list[tuple[Any, str | None]] = []

    def implementations(hook_name: str) -> list[Any]:
        caller = getattr(manager.hook, hook_name)
        return [impl.function for impl in caller.get_hookimpls() if impl.plugin_name == plugin_name]

    hooks = 0
    try:
        for hook_name, kind in _HOOK_KINDS.items():
            for function in implementations(hook_name):
                hooks += 1
                function(register=_registrar(kind, dist, staged))
        for function in implementations("register_commands"):
            hooks += 1
            function(register=lambda command, name=None: commands.append((command, name)))
        registry.add_all(staged)
    except Exception as exc:
        info.status = describe_error(exc)
        return
    if entry is not None and not staged and not commands:
        info.status = f"entry point `{entry}` registered nothing: " + (
            "its register_* hooks never called register()"
            if hooks
            else "no function in it is marked @hookimpl; decorate its register_* functions with @dynalign.hookimpl"
        )
        return
    registry.commands.extend(commands)
    info.components.extend({"kind": e.kind, "name": e.name} for e in staged)


def import_failure(ep: EntryPoint, dist: str, exc: BaseException) -> str:
    """Why an entry point did not import, naming it as the distribution's metadata declares it."""
    where = f"entry point `{ep.name} = {ep.value}` of {dist}"
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if missing and (ep.module == missing or ep.module.startswith(f"{missing}.")):
        return (
            f"failed to import {where}: no module named {missing!r}; fix the entry point under "
            f"[project.entry-points.{GROUP}] in its pyproject.toml and reinstall it"
        )
    return f"failed to import {where}: {describe_error(exc)}"


def describe_error(exc: BaseException) -> str:
    """A plugin's error in one line: dynalign's own errors as they are (they name the file and
    field); anything else with its type and the file and line that raised it."""
    if isinstance(exc, DynalignError):
        return str(exc)
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(("<", _IMPORTLIB))  # the plugin's own line, not the import machinery
    ]
    where = "" if isinstance(exc, SyntaxError) or not frames else f" ({frames[-1].filename}:{frames[-1].lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


def _registrar(kind: str, dist: str, staged: list[Entry]):
    def register(obj: Any, aliases: Iterable[str] = ()) -> None:
        if kind == "value":
            if not isinstance(obj, ValueSpec):
                raise PluginError(f"{dist} registered {obj!r} as a value; register_values takes a ValueSpec")
            staged.append(Entry(kind, obj.name, obj, dist, tuple(obj.aliases)))
            return
        base = COMPONENT_BASES[kind]
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginError(f"{dist} registered {obj!r} as a {kind}; it must be a subclass of {base.__name__}")
        if not obj.name:
            raise PluginError(f"{dist} registered {obj.__name__} without a `name`")
        staged.append(Entry(kind, obj.name, obj, dist, (*obj.aliases, *aliases)))

    return register
