"""One way to open a run: `open_stack` turns a config (a file, a loaded RunConfig, or the one a
run directory recorded) into a constructed, validated `Stack`, and with `bind=True` gives the
rewarders that score with the policy its initial weights (`bind_policy`, which the optimizer
also uses to give them the live policy). Every command opens its run here."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from dynalign import plugins
from dynalign.components import RunContext
from dynalign.config import env_locator, load_config
from dynalign.errors import ConfigError, RunDirectoryError
from dynalign.models import ChatModel, PolicyHandle, TrainablePolicy
from dynalign.registry import Registry
from dynalign.rewards import Rewarder, WeightedRewarder
from dynalign.runconfig import RunConfig
from dynalign.rundir import RunDirectory
from dynalign.stack import Stack


def _recorded_config(root: Path) -> RunConfig:
    """The config a run directory recorded when it started."""
    run_dir = RunDirectory(root)
    if run_dir.root.exists() and not run_dir.root.is_dir():
        raise RunDirectoryError(f"{run_dir.root} is a file, not a run directory; give the --out folder of a run")
    if not run_dir.root.is_dir():
        raise RunDirectoryError(f"run directory {run_dir.root} does not exist")
    record = run_dir.read_json(RunDirectory.CONFIG)
    if not record or "config" not in record:
        raise RunDirectoryError(
            f"{run_dir.root} is not a dynalign run directory (no config.json); give the --out of a run"
        )
    return RunConfig.model_validate(record["config"])


def open_stack(
    config: RunConfig | str | Path | None = None,
    *,
    run_dir: str | Path | None = None,
    registry: Registry | None = None,
    source: str | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    say: Callable[[str], None] | None = None,
    check: bool | str = False,
    bind: bool = False,
) -> Stack:
    """Look up every component a config names and validate its options.

    `config`: a config file (None: the default stack) or a loaded RunConfig. Without it, the
    config `run_dir` recorded (a run to evaluate or report on). `run_dir` is also where the
    components keep their files (a judge's verdict cache). `options`: values a command's flags
    set over the config's, by section (`{"prompts": {"n": 40}}`; sections policy, prompts,
    optimizer). `say` receives the components'
    one-line decisions. `bind`: give the rewarders that score with the policy (self-reward)
    its initial weights, as at the start of training (`bind_policy`).
    """
    if config is None and run_dir is not None:
        config, where = _recorded_config(Path(run_dir)), source or "run config"
    elif isinstance(config, RunConfig):
        where = source or "config"
    else:
        where = source or (str(config) if config is not None else "default config")
        config = load_config(config)
    if options:
        config = config.model_copy(deep=True)
        for section, values in options.items():
            getattr(config, section).options.update(values)
    registry = registry or plugins.get_registry()  # looked up at call time: a test may swap it
    context = RunContext(registry.get("value", config.value).obj, registry, seed=config.seed, source=where)
    context.run_dir = Path(run_dir) if run_dir is not None else None
    context.locate = env_locator(os.environ)
    if say is not None:
        context.say = say
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
    stack = Stack(config, context, policy, generator, rewarders, optimizer, stages)  # type: ignore[arg-type]
    if check:
        preflight(stack, check if isinstance(check, str) else None)
    if bind:  # after the checks: binding may load weights and measure signals (minutes)
        bind_policy([w.rewarder for w in rewarders], policy)
    return stack


def bind_policy(rewarders: Iterable[Rewarder], policy: ChatModel | PolicyHandle) -> PolicyHandle | None:
    """Give each rewarder the policy (`Rewarder.bind_policy`): a PolicyHandle as it is (the
    optimizer's live policy), or a model's handle on its initial weights, made only when a
    rewarder scores with the policy (`needs_policy`: else None is returned and nothing bound).
    A policy that is not a local model cannot serve a rewarder that needs one: ConfigError."""
    rewarders = list(rewarders)
    if isinstance(policy, PolicyHandle):
        handle = policy
    else:
        needing = [r for r in rewarders if r.needs_policy]
        if not needing:
            return None
        if not isinstance(policy, TrainablePolicy):
            raise ConfigError(
                f"rewarder {needing[0].name!r} scores with the policy, but policy.backend {policy.name!r} is not a "
                "local model; use backend 'hf' (or score with a 'judge' rewarder that names this model)"
            )
        handle = policy.policy_handle()
    for rewarder in rewarders:
        rewarder.bind_policy(handle)
    return handle


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


def preflight(stack: Stack, section: str | None = None) -> None:
    """Before any work: every model the stack's config (or only its `section`, e.g. "prompts")
    names passes its `preflight` (e.g. its API key variable is set)."""
    data = stack.config.model_dump(mode="json")
    for where, ref in model_refs(data[section] if section else data, section or ""):
        model = stack.context.build_model({"backend": ref["backend"], "options": ref.get("options", {})}, where)
        model.preflight()
