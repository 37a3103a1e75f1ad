"""Loading a run configuration (its shape: `dynalign.runconfig`): a TOML file, checked in two phases.

Phase 1 (`load_config`) checks the file's shape; `DYNALIGN_*` environment variables override
keys (nested with `__`, e.g. `DYNALIGN_OPTIMIZER__OPTIONS__NUM_GENERATIONS=4`; list entries by
index, `DYNALIGN_REWARDERS__0__WEIGHT=2`), and an error in an overridden key names the
variable instead of the file. Phase 2
(`open_stack` in dynalign.opening) looks each named component up and validates its `options`
against the component's own `Options` model. Secrets are never values: options name the
environment variable that holds them (`api_key_env = "OPENAI_API_KEY"`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tomllib
from pydantic import ValidationError

from dynalign.errors import ConfigError, format_location, validation_message
from dynalign.files import read_text, require_file
from dynalign.runconfig import RunConfig

ENV_PREFIX = "DYNALIGN_"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file (a UTF-8 byte-order mark is accepted); syntax errors name the line
    and column."""
    require_file(path, "config file", ConfigError)
    try:
        return tomllib.loads(read_text(path, ConfigError))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from exc


def _env_overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The `DYNALIGN_*` variables that name a config key, by upper-cased name."""
    fields = set(RunConfig.model_fields)
    out = {}
    for name, raw in environ.items():
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper[len(ENV_PREFIX) :].split("__")[0].lower() in fields:
            out[upper] = raw
    return out


def _overriding_variable(where: str, environ: Mapping[str, str]) -> str | None:
    """The environment variable that set the config key at dotted location `where`, if any."""
    parts = where.replace("[", ".").replace("]", "").split(".")
    overrides = _env_overrides(environ)
    for size in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:size]).upper()
        if name in overrides:
            return f"environment variable {name}"
    return None


def env_locator(environ: Mapping[str, str]) -> Callable[[str], str | None]:
    """For error lines: the `DYNALIGN_*` variable that set a config key (`where`), if one did."""
    return lambda where: _overriding_variable(where, environ)


def override_value(raw: str, current: Any = None) -> Any:
    """An override's value: kept as text where the key holds text, else parsed as JSON if it is."""
    if isinstance(current, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Set each `DYNALIGN_A__B__0__C` variable's value at `data["a"]["b"][0]["c"]`, in place
    (keys the file leaves out start from their defaults)."""
    defaults: dict[str, Any] | None = None
    for name, raw in sorted(_env_overrides(environ).items()):
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in data:
            defaults = defaults if defaults is not None else RunConfig().model_dump(mode="json")
            data[path[0]] = defaults[path[0]]
        node: Any = data
        for depth, key in enumerate(path):
            here = format_location([int(p) if p.isdigit() else p for p in path[:depth]]) if depth else "the config"
            last = depth == len(path) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(
                        f"environment variable {name}: {here} is a list of {len(node)}; "
                        f"{key!r} is not an index from 0 to {len(node) - 1}"
                    )
                index = int(key)
                if last:
                    node[index] = override_value(raw, node[index])
                node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[key] = override_value(raw, node.get(key))
                node = node.setdefault(key, {})
            else:
                raise ConfigError(f"environment variable {name}: {here} is a single value, not a table or list")


def non_finite(data: Any, where: str = "") -> str | None:
    """The dotted location of the first NaN or infinity anywhere in `data`, or None."""
    if isinstance(data, float) and not math.isfinite(data):
        return where or "(top level)"
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, item in items:
        found = non_finite(item, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else key)
        if found:
            return found
    return None


def load_config(path: str | Path | None = None, **overrides: Any) -> RunConfig:
    """Phase 1: read and shape-check a config (no file: the default CA stack), with the
    `DYNALIGN_*` environment overrides applied."""
    source = str(path) if path is not None else "default config"
    data = read_toml(Path(path)) if path is not None else {}
    apply_env_overrides(data, os.environ)
    data.update({k: v for k, v in overrides.items() if v is not None})
    where = non_finite(data)
    if where:
        who = _overriding_variable(where, os.environ) or source
        raise ConfigError(f"{who}: {where}: nan and inf are not allowed; give a finite number")
    try:
        return RunConfig(**data)
    except ValidationError as exc:
        raise ConfigError(validation_message(source, exc, locate=env_locator(os.environ))) from exc
