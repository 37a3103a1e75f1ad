"""Prompt-set statistics for the report: lengths, pillars, near-duplicate similarity, and
whatever the prompt generator recorded in RUN_DIR/prompt_stats.json."""

from __future__ import annotations

import re
from typing import Any

from dynalign.api import RunDirectory

_WORDS = re.compile(r"\w+")


def nearest_similarity(prompts: list[str]) -> list[float]:
    """For each prompt, the word-set Jaccard similarity to its most similar other prompt."""
    sets = [set(_WORDS.findall(p.lower())) for p in prompts]
    out = []
    for i, words in enumerate(sets):
        best = 0.0
        for j, other in enumerate(sets):
            if i != j and (words or other):
                best = max(best, len(words & other) / len(words | other))
        out.append(best)
    return out


def prompt_stats(run_dir: RunDirectory, max_prompts: int = 400) -> dict[str, Any]:
    """Counts per split and pillar, word lengths, nearest-neighbour similarity, recorded stats."""
    prompts = run_dir.read_prompts()
    out: dict[str, Any] = {"recorded": run_dir.read_json("prompt_stats.json")}
    if prompts is None:
        return out
    every = prompts.train + prompts.held_out
    out["counts"] = {"train": len(prompts.train), "held_out": len(prompts.held_out)}
    pillars: dict[str, int] = {}
    for record in every:
        pillars[record.pillar or "(none)"] = pillars.get(record.pillar or "(none)", 0) + 1
    out["pillars"] = dict(sorted(pillars.items()))
    out["lengths"] = [len(_WORDS.findall(r.prompt)) for r in every]
    out["similarity"] = nearest_similarity([r.prompt for r in every[:max_prompts]])
    return out


def numeric_lists(data: Any, prefix: str = "") -> dict[str, list[float]]:
    """Every list of numbers inside a recorded stats object, by dotted key (for histograms)."""
    found: dict[str, list[float]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            found.update(numeric_lists(value, f"{prefix}{key}."))
    elif isinstance(data, list) and len(data) > 1 and all(isinstance(v, (int, float)) for v in data):
        found[prefix.rstrip(".")] = [float(v) for v in data]
    return found


def scalars(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every scalar inside a recorded stats object, by dotted key (for a table)."""
    found: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            found.update(scalars(value, f"{prefix}{key}."))
    elif isinstance(data, (int, float, str, bool)) or data is None:
        found[prefix.rstrip(".")] = data
    return found
