"""Fake finished runs for tests and benchmarks of evaluation and reports (no training needed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dynalign.api import PromptRecord, PromptSet, RunDirectory

PILLARS = ("Knowledge", "Power", "Vitality", "Benevolence")


def make_run_dir(
    root: Path,
    base_model: str | Path,
    aligned_model: str | Path | None,
    held_out: int = 4,
    train: int = 6,
    steps: int = 5,
    stages: list[dict[str, Any]] | None = None,
) -> RunDirectory:
    """A run directory as `dynalign run` leaves it: config, prompts, metrics, state, results.

    `aligned_model` None leaves the run untrained (no state, no results).
    """
    config = {"policy": {"backend": "hf", "options": {"model": str(base_model)}}, "stages": stages or []}
    run = RunDirectory.prepare(Path(root), config, resume=False)
    topics = ["a community garden", "a tired nurse", "a school board vote", "a flooded town", "a new coworker"]
    records = [
        PromptRecord(
            id=f"p{i}", prompt=f"How can I help with {topics[i % len(topics)]} (case {i})?", pillar=PILLARS[i % 4]
        )
        for i in range(train + held_out)
    ]
    run.write_prompts(PromptSet(train=records[:train], held_out=records[train:]))
    for step in range(1, steps + 1):
        run.append_jsonl(
            RunDirectory.METRICS,
            {
                "round": 0,
                "step": step,
                "reward_mean": 2.0 + math.log(step),
                "reward_std": 0.5 / step,
                "zero_std_fraction": 0.1 * (step % 3),
                "unscorable_rate": 0.02,
                "completion_length": 80.0 + step,
                "kl": 0.01 * step,
                "loss": 0.1,
            },
        )
    if aligned_model is not None:
        run.save_state({"rounds": {"0": {"model_dir": str(aligned_model), "steps": steps}}})
        run.write_json("results.json", {"final_model": str(aligned_model), "rounds": run.state["rounds"]})
    return run
