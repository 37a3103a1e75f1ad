"""Reading a finished run directory: its config, prompts, final model and the models to compare."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynalign.config import RunConfig
from dynalign.context import RunContext
from dynalign.errors import DynalignError
from dynalign.interfaces import ChatModel, TrainablePolicy
from dynalign.plugins import get_registry
from dynalign.registry import Registry
from dynalign.rundir import RunDirectory
from dynalign_eval.options import EvalError


@dataclass
class LoadedRun:
    """A run directory with its config and a context to build models in."""

    run_dir: RunDirectory
    config: RunConfig
    context: RunContext

    def stage_options(self, name: str) -> dict[str, Any]:
        """The options the config gives the stage `name` (empty if it lists none)."""
        for ref in self.config.stages:
            if ref.name == name:
                return dict(ref.options)
        return {}


def open_run(root: Path, registry: Registry | None = None) -> LoadedRun:
    """Open a run directory; only the value and policy need to be installed."""
    run_dir = RunDirectory(Path(root))
    if run_dir.root.exists() and not run_dir.root.is_dir():
        raise EvalError(f"{run_dir.root} is a file, not a run directory; give the --out folder of a run")
    if not run_dir.root.is_dir():
        raise EvalError(f"run directory {run_dir.root} does not exist")
    record = run_dir.read_json(RunDirectory.CONFIG)
    if not record or "config" not in record:
        raise EvalError(f"{run_dir.root} is not a dynalign run directory (no config.json); give the --out of a run")
    config = RunConfig.model_validate(record["config"])
    registry = registry or get_registry()
    value = registry.get("value", config.value).obj
    context = RunContext(value=value, registry=registry, run_dir=run_dir.root, seed=config.seed, source="run config")
    return LoadedRun(run_dir, config, context)


def _relocate(path: str, run_dir: RunDirectory) -> Path:
    """A recorded model folder, or the same path under this run directory if the run moved."""
    found = Path(path)
    if found.exists() or found.is_absolute() and "rounds" not in found.parts:
        return found
    parts = found.parts
    if "rounds" in parts:
        return run_dir.root.joinpath(*parts[parts.index("rounds") :])
    return run_dir.root / found


def final_model_dir(run_dir: RunDirectory) -> Path:
    """The trained model of the run's last round; EvalError if training has not finished."""
    results = run_dir.read_json("results.json") or {}
    path = results.get("final_model")
    if path is None:
        record = run_dir.read_json(RunDirectory.CONFIG) or {}
        rounds = int(record.get("config", {}).get("rounds", 1))
        done = run_dir.state.get("rounds", {})
        last = done.get(str(rounds - 1))
        if not last:
            raise EvalError(
                f"{run_dir.root} has no trained model yet ({len(done)}/{rounds} rounds done); "
                "finish it with `dynalign run --resume`"
            )
        path = last["model_dir"]
    folder = _relocate(str(path), run_dir)
    if not (folder / "config.json").exists():
        raise EvalError(f"trained model folder {folder} is missing or incomplete; re-run the last round")
    return folder


def model_path(model: ChatModel) -> str | None:
    """The local weights folder of a trainable backend (None for API models)."""
    if isinstance(model, TrainablePolicy):
        try:
            return model.pretrained_path()
        except DynalignError:
            return None
    return None


@functools.lru_cache(maxsize=16)
def weights_digest(folder: str | None) -> str | None:
    """sha256 (first 16 hex digits) of a model folder's weight files: the exact revision compared."""
    if folder is None:
        return None
    files = sorted(
        p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin", ".gguf", ".pt") and p.is_file()
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def describe(model: ChatModel) -> dict[str, Any]:
    """What results record about a model: the backend's description, folder and weights digest."""
    folder = model_path(model)
    return {**model.describe(), "path": folder, "weights_sha256": weights_digest(folder)}
