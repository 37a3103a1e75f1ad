"""Run configuration: a TOML file, checked in two phases.

Phase 1 (`load_config`) checks the file's shape; `DYNALIGN_*` environment variables override
keys (nested with `__`, e.g. `DYNALIGN_OPTIMIZER__OPTIONS__NUM_GENERATIONS=4`; list entries by
index, `DYNALIGN_REWARDERS__0__WEIGHT=2`), and an error in an overridden key names the
variable instead of the file. Phase 2
(`resolve` in dynalign.stack) looks each named component up and validates its `options`
against the component's own `Options` model. Secrets are never values: options name the
environment variable that holds them (`api_key_env = "OPENAI_API_KEY"`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dynalign.errors import ConfigError, format_location
from dynalign.files import read_text, require_file
from dynalign.redaction import redact_urls
from dynalign.teacher import Teacher

DEFAULT_POLICY = "embedded:smollm2-135m-instruct"
ENV_PREFIX = "DYNALIGN_"
SECRET_KEY = re.compile(r"(api_?key|token|secret|password)$", re.IGNORECASE)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelRef(_Section):
    """A model backend by name plus its options (the policy, a judge, an agent...)."""

    backend: str = "hf"
    options: dict[str, Any] = Field(default_factory=dict)


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
    teacher: Teacher | None = Field(
        None,
        description="The teacher context for the contrast self-signal and context_distillation "
        "(default: the value's own [teacher], which defaults to its system prompt alone).",
    )
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


def validation_message(
    source: str, exc: ValidationError, prefix: str = "", environ: Mapping[str, str] | None = None
) -> str:
    """One line for the first error of a ValidationError, located in `source`, or, for a run
    config checked with its `environ`, in the `DYNALIGN_*` variable that set that key (or a
    table above it)."""
    first = exc.errors()[0]
    where = format_location((*([prefix] if prefix else []), *first["loc"]))
    source = (_overriding_variable(where, environ) if environ is not None else None) or source
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: {where}: unknown option (check its spelling; `dynalign components` lists the options)"
    if kind == "missing":
        return f"{source}: {where}: required field is missing"
    return f"{source}: {where}: {first['msg']}"


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
        raise ConfigError(validation_message(source, exc, environ=os.environ)) from exc


def redact(data: Any) -> Any:
    """A copy of `data` with every secret-looking key's value replaced by "***" and URL
    credentials in every string redacted."""
    if isinstance(data, dict):
        return {k: ("***" if isinstance(k, str) and SECRET_KEY.search(k) and v else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(item) for item in data]
    return redact_urls(data) if isinstance(data, str) else data
