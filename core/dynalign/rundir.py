"""The run directory: resolved config, prompts, metrics, checkpoints, results.

Files are written atomically (temp file, then rename); metrics are appended one JSON object
per line. A directory belongs to one run: its config fingerprint must match to resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from dynalign.errors import RunDirectoryError
from dynalign.files import atomic_write_text, read_json, read_text
from dynalign.promptsets import PromptRecord, PromptSet

RECORDED_PACKAGES = ("dynalign", "dynalign-value-ca", "torch", "transformers", "trl", "peft", "accelerate")


def package_versions(names: tuple[str, ...] = RECORDED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages a run's results depend on (None: not installed)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def fingerprint(config: dict[str, Any]) -> str:
    """A stable hash of a resolved config, ignoring where it is written."""
    relevant = {k: v for k, v in config.items() if k != "output_dir"}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunDirectory:
    """One run's folder; create it with `prepare`."""

    CONFIG = "config.json"
    STATE = "state.json"
    METRICS = "metrics.jsonl"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._made: list[Path] = []  # folders `prepare` created for this run, deepest first

    @classmethod
    def prepare(cls, root: Path, config: dict[str, Any], resume: bool) -> RunDirectory:
        """Create a run directory for `config`, or reopen it to resume.

        Refuses a folder that holds a different run, an unrelated non-empty folder, a run
        that exists without `--resume`, and `--resume` with nothing to resume. A folder whose
        run never started (it holds only `config.json`: the start failed) counts as empty.
        """
        run = cls(root)
        config_path = run.root / cls.CONFIG
        wanted = fingerprint(config)
        if run.root.exists() and not run.root.is_dir():
            raise RunDirectoryError(f"{run.root} is a file; give a folder as --out")
        if config_path.exists() and not run.started():
            config_path.unlink()
        if config_path.exists():
            held = read_json(config_path, RunDirectoryError, "; remove the folder or choose another --out").get(
                "fingerprint"
            )
            if held != wanted:
                raise RunDirectoryError(
                    f"{run.root} holds a different run (its config differs); choose another --out or remove it"
                )
            if not resume:
                raise RunDirectoryError(f"{run.root} already holds this run; pass --resume to continue it")
            return run
        if resume:
            raise RunDirectoryError(f"{run.root} holds no run to resume; drop --resume to start one")
        if run.root.exists() and any(run.root.iterdir()):
            raise RunDirectoryError(f"{run.root} exists and is not a dynalign run directory; choose another --out")
        record = {"fingerprint": wanted, "config": config, "versions": package_versions()}
        run._made = _missing_folders(run.root)
        run.write_json(cls.CONFIG, record)
        return run

    def started(self) -> bool:
        """Whether anything besides the config was written: a file anywhere in the folder
        (prompts, state, metrics, caches). Empty folders a failed start made do not count."""
        config = self.path(self.CONFIG)
        return self.root.is_dir() and any(p != config and not p.is_dir() for p in self.root.rglob("*"))

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Around a run's first work: if it fails before anything besides the config was
        written, remove the config, the empty folders under it and the folders `prepare`
        made for it (`--out a/b/c` made `a/`: it goes too), leaving nothing behind."""
        try:
            yield
        except BaseException:
            if self.root.is_dir() and not self.started():
                self.path(self.CONFIG).unlink(missing_ok=True)
                inner = sorted((p for p in self.root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
                for folder in [*inner, *self._made]:
                    with suppress(OSError):  # not empty after all: keep it
                        folder.rmdir()
            raise

    def path(self, relative: str) -> Path:
        """Absolute path of a file or folder inside the run."""
        return self.root / relative

    def write_json(self, relative: str, data: Any) -> Path:
        """Atomically write `data` as indented JSON."""
        target = self.path(relative)
        atomic_write_text(target, json.dumps(data, indent=2, default=str) + "\n")
        return target

    def read_json(self, relative: str, default: Any = None) -> Any:
        """Read a JSON file of the run, or `default` if it does not exist."""
        target = self.path(relative)
        return read_json(target, RunDirectoryError) if target.exists() else default

    def append_jsonl(self, relative: str, row: dict[str, Any]) -> None:
        """Append one JSON object as a line (flushed, so a kill loses at most this line)."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def read_jsonl(self, relative: str) -> list[dict[str, Any]]:
        """All complete lines of a JSON-lines file (a torn last line from a kill is skipped)."""
        target = self.path(relative)
        if not target.exists():
            return []
        rows = []
        for line in read_text(target, RunDirectoryError).splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def rewrite_jsonl(self, relative: str, rows: list[dict[str, Any]]) -> None:
        """Atomically replace a JSON-lines file."""
        atomic_write_text(self.path(relative), "".join(json.dumps(r, default=str) + "\n" for r in rows))

    @property
    def state(self) -> dict[str, Any]:
        """Progress of the run: finished rounds and their models."""
        return self.read_json(self.STATE, {"rounds": {}})

    def save_state(self, state: dict[str, Any]) -> None:
        """Atomically record progress."""
        self.write_json(self.STATE, state)

    def rewind_metrics(self, round_index: int, step: int) -> None:
        """Drop metrics of `round_index` logged after optimizer step `step` (before resuming)."""
        target = self.path(self.METRICS)
        text = read_text(target, RunDirectoryError) if target.exists() else ""
        rows = self.read_jsonl(self.METRICS)
        kept = [r for r in rows if not (r.get("round") == round_index and r.get("step", 0) > step)]
        torn = len(rows) != sum(1 for line in text.splitlines() if line.strip()) or (text and not text.endswith("\n"))
        if len(kept) != len(rows) or torn:  # a kill may have left half a line: the next append must not join it
            self.rewrite_jsonl(self.METRICS, kept)

    def write_prompts(self, prompts: PromptSet) -> None:
        """Write the prompt set as `prompts/train.jsonl` and `prompts/held_out.jsonl`."""
        for split in ("held_out", "train"):  # train last: its presence marks the set complete
            rows = [record.model_dump() for record in getattr(prompts, split)]
            self.rewrite_jsonl(f"prompts/{split}.jsonl", rows)

    def round_prompts(self, round_index: int) -> list[PromptRecord] | None:
        """Refreshed training prompts of a round (None: the round uses the initial set)."""
        if not self.path(f"prompts/round-{round_index}.jsonl").exists():
            return None
        return [PromptRecord(**r) for r in self.read_jsonl(f"prompts/round-{round_index}.jsonl")]

    def write_round_prompts(self, round_index: int, records: list[PromptRecord]) -> None:
        """Atomically record a round's refreshed training prompts."""
        self.rewrite_jsonl(f"prompts/round-{round_index}.jsonl", [r.model_dump() for r in records])

    def pillar_weakness(self, round_index: int) -> dict[str, float]:
        """Per pillar, 1 - mean score / best pillar's mean, from a round's `pillar/<Name>` metrics."""
        sums: dict[str, list[float]] = {}
        for row in self.read_jsonl(self.METRICS):
            if row.get("round") == round_index:
                for key, value in row.items():
                    if key.startswith("pillar/") and isinstance(value, (int, float)):
                        sums.setdefault(key.split("/", 1)[1], []).append(float(value))
        means = {pillar: sum(values) / len(values) for pillar, values in sums.items()}
        best = max(means.values(), default=0.0)
        return {pillar: (1.0 - mean / best) if best > 0 else 0.0 for pillar, mean in means.items()}

    def read_prompts(self) -> PromptSet | None:
        """The run's prompt set, or None if it has not been written yet."""
        if not self.path("prompts/train.jsonl").exists():
            return None
        return PromptSet(
            train=[PromptRecord(**r) for r in self.read_jsonl("prompts/train.jsonl")],
            held_out=[PromptRecord(**r) for r in self.read_jsonl("prompts/held_out.jsonl")],
        )


def _missing_folders(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing
