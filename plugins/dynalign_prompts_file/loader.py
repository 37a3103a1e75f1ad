"""Load prompts from a file or folder and split them, seeded, into train and held-out sets."""

from __future__ import annotations

import csv
import hashlib
import io
import random
from pathlib import Path

from pydantic import Field

from dynalign.api import (
    ConfigError,
    Options,
    PromptGenerator,
    PromptRecord,
    PromptSet,
    ValueSpec,
    read_jsonl_strict,
    read_text,
    require_file,
)


class FileOptions(Options):
    """Options of the `file` prompt source."""

    path: Path | None = Field(None, description="JSONL, CSV or `datasets` folder; none: the value's bundled prompts.")
    column: str = Field("prompt", description="Column holding the prompt text.")
    pillar_column: str = Field("pillar", description="Optional column naming the pillar a prompt targets.")
    n: int | None = Field(None, ge=1, description="Use at most this many prompts (after shuffling).")
    held_out: int = Field(8, ge=0, description="How many prompts to hold out for evaluation.")
    seed: int | None = Field(None, description="Shuffle seed; default: the run's seed.")
    max_chars: int = Field(
        8000, ge=1, description="Longest prompt taken (about 2k tokens: well inside a small model's context)."
    )


def _rows_from_path(path: Path) -> list[dict]:
    require_file(path, "prompt file", ConfigError)
    if path.is_dir():
        from datasets import load_from_disk

        dataset = load_from_disk(str(path))
        if hasattr(dataset, "keys"):  # a DatasetDict: use its train split, else the first
            dataset = dataset["train"] if "train" in dataset else dataset[next(iter(dataset.keys()))]
        return list(dataset)
    if path.suffix == ".csv":
        return list(csv.DictReader(io.StringIO(read_text(path, ConfigError), newline="")))
    return read_jsonl_strict(path, ConfigError)


def prompt_id(text: str) -> str:
    """A stable id for a prompt: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:12]


class FilePromptSource(PromptGenerator):
    """Prompts from a file or folder, or the value's bundled prompts; seeded split."""

    name = "file"
    aliases = ("dataset",)
    Options = FileOptions
    options: FileOptions

    def generate(self, value: ValueSpec) -> PromptSet:
        """Read, deduplicate, shuffle and split the prompts."""
        opts = self.options
        if opts.path is None:
            rows = [p.model_dump() for p in value.prompts]
            source = f"value {value.name!r}"
            if not rows:
                raise ConfigError(f"value {value.name!r} ships no prompts; set prompts.options.path")
        else:
            rows = _rows_from_path(opts.path)
            source = str(opts.path)
            if rows and opts.column not in rows[0]:
                raise ConfigError(f"{source}: no column {opts.column!r}; columns are {sorted(rows[0])}")
        records: dict[str, PromptRecord] = {}
        for number, row in enumerate(rows, start=1):
            text = str(row.get(opts.column) or "").strip()
            if len(text) > opts.max_chars:
                raise ConfigError(
                    f"{source}: prompt {number} is {len(text)} characters, more than max_chars = {opts.max_chars} "
                    "(it would not fit the model's context); shorten it or raise prompts.options.max_chars"
                )
            if text:
                records.setdefault(
                    prompt_id(text), PromptRecord(id=prompt_id(text), prompt=text, pillar=row.get(opts.pillar_column))
                )
        unique = sorted(records.values(), key=lambda r: r.id)
        random.Random(opts.seed if opts.seed is not None else self._run_seed()).shuffle(unique)
        if opts.n is not None:
            unique = unique[: opts.n]
        if len(unique) <= opts.held_out:
            raise ConfigError(
                f"{source} has {len(unique)} distinct prompts, not enough for held_out = {opts.held_out} plus training"
            )
        cut = len(unique) - opts.held_out
        return PromptSet(train=unique[:cut], held_out=unique[cut:])

    def _run_seed(self) -> int:
        return self.context.seed if self.context is not None else 0
