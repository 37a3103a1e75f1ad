"""Reading a finished run directory (opened with `dynalign.api.open_stack(run_dir=...)`): its
final model and what results record about the models compared."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from dynalign.api import ChatModel, DynalignError, RunDirectory, TrainablePolicy
from dynalign_eval.options import EvalError


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
