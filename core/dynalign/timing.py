"""Where a run's wall time went: phases in RUN_DIR/timings.json, steps in metrics.jsonl.

Phases are named by what ran (`prompts`, `round 0: load`, `round 0: rewarders`, `round 0:
steps`, `stage eval: efficacy`, ...) and recorded as they finish; a resumed run adds the
time of what it redid (a phase run twice is summed, its count kept). Optimizers report each
step's parts as `time/<part>` metrics (seconds), summarised here by their medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dynalign.rundir import RunDirectory

TIMINGS = "timings.json"
Recorder = Callable[[str, float], None]


def recorder(run_dir: RunDirectory) -> Recorder:
    """A function that adds `seconds` to phase `name` in the run's timings.json."""

    def record(name: str, seconds: float) -> None:
        data = run_dir.read_json(TIMINGS, {}) or {}
        phases = data.setdefault("phases", {})
        entry = phases.setdefault(name, {"seconds": 0.0, "count": 0})
        entry["seconds"] = round(entry["seconds"] + seconds, 3)
        entry["count"] += 1
        run_dir.write_json(TIMINGS, data)

    return record


@contextmanager
def timed(record: Recorder, name: str) -> Iterator[None]:
    """Record the wall time of the block as phase `name` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        record(name, time.perf_counter() - started)


def _seconds(value: float) -> str:
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.1f} s"


def step_parts(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median seconds of each `time/<part>` metric over the step rows that have it."""
    parts: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("time/") and isinstance(value, (int, float)):
                parts.setdefault(key.removeprefix("time/"), []).append(float(value))
    return {part: statistics.median(values) for part, values in parts.items()}


def summary_line(run_dir: RunDirectory, total: float | None = None) -> str:
    """One line: every phase's time, and the median step split into its parts."""
    phases = (run_dir.read_json(TIMINGS, {}) or {}).get("phases", {})
    items = [f"{name} {_seconds(entry['seconds'])}" for name, entry in phases.items()]
    parts = step_parts(run_dir.read_jsonl(RunDirectory.METRICS))
    if "step" in parts:
        split = ", ".join(f"{name} {value:.1f}" for name, value in parts.items() if name != "step")
        items.append(f"median step {parts['step']:.1f} s" + (f" ({split})" if split else ""))
    if total is not None:
        items.append(f"total {_seconds(total)}")
    return "timings: " + ("; ".join(items) or "nothing recorded")
