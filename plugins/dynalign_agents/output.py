"""The prompt set on disk: a seeded train / held-out split, JSONL files and a `datasets` folder."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dynalign.api import PromptRecord, PromptSet, atomic_write_text, read_jsonl_strict

SPLITS = ("train", "held_out")


def split(rows: list[dict[str, Any]], held_out: int, seed: int) -> PromptSet:
    """Shuffle the (unique) prompts with `seed` and cut off `held_out` of them: a partition,
    so the two splits are disjoint by construction."""
    ordered = sorted(rows, key=lambda row: row["id"])
    if len({row["id"] for row in ordered}) != len(ordered):
        raise AssertionError("prompt ids must be unique before splitting")
    random.Random(seed).shuffle(ordered)
    records = [PromptRecord(**row) for row in ordered]
    return PromptSet(train=records[held_out:], held_out=records[:held_out])


def write_prompt_set(folder: Path, prompts: PromptSet, summary: dict[str, Any]) -> None:
    """Write `train.jsonl`, `held_out.jsonl`, `dataset/` (load_from_disk) and `summary.json`."""
    from datasets import Dataset, DatasetDict
    from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    folder.mkdir(parents=True, exist_ok=True)
    splits = {name: [r.model_dump() for r in getattr(prompts, name)] for name in SPLITS}
    for name, rows in splits.items():
        atomic_write_text(folder / f"{name}.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    columns = sorted({key for rows in splits.values() for row in rows for key in row})
    dataset = DatasetDict(
        {name: Dataset.from_list([{c: row.get(c) for c in columns} for row in rows]) for name, rows in splits.items()}
    )
    target = folder / "dataset"
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".dataset."))
    quiet = is_progress_bar_enabled()
    disable_progress_bars()  # our own bar already reported progress
    try:
        dataset.save_to_disk(str(staging / "dataset"))
        if target.exists():
            shutil.rmtree(target)
        (staging / "dataset").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if quiet:
            enable_progress_bars()
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2) + "\n")


def read_prompt_rows(source: Path) -> list[dict[str, Any]]:
    """Prompt rows from an output folder, a run directory, or a JSONL file (all splits)."""
    if source.is_file():
        files = [source]
    else:
        for folder in (source, source / "prompt_generation", source / "prompts"):
            files = [folder / f"{name}.jsonl" for name in SPLITS if (folder / f"{name}.jsonl").exists()]
            if files:
                break
    rows = []
    for path in files:
        for row in read_jsonl_strict(path):
            row.setdefault("split", path.stem)
            rows.append(row)
    return rows
