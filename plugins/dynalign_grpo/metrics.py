"""Per-step metrics: TRL's logs renamed to dynalign's schema, plus reward diagnostics."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from dynalign.api import LENGTH_CORR, PILLAR_PREFIX, UNSCORABLE_RATE, Rewarder, checked_scores, logged_metrics

RENAMES = {
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "frac_reward_zero_std": "zero_std_fraction",
    "completions/mean_length": "completion_length",
    "completions/clipped_ratio": "clipped_fraction",
    "kl": "kl",
    "loss": "loss",
    "learning_rate": "learning_rate",
    "entropy": "entropy",
    "grad_norm": "grad_norm",
    "step_time": "step_time",
}


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation, None when either side has no variance."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def reward_function(rewarder: Rewarder) -> Callable[..., list[float | None]]:
    """Wrap a Rewarder for TRL: forwards its diagnostics and the length-reward correlation
    through TRL's `log_metric`, so they are averaged per logging step with TRL's own."""

    def score(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        log_metric = columns.pop("log_metric", None)
        scores = checked_scores(rewarder.name, rewarder(prompts, completions, **columns), len(completions))
        if log_metric is not None:
            for key, value in logged_metrics(rewarder).items():
                log_metric(key, value)
            lengths = [len(ids) for ids in columns.get("completion_ids") or []]
            pairs = [(float(n), s) for n, s in zip(lengths, scores) if s is not None and math.isfinite(s)]
            corr = pearson([p[0] for p in pairs], [p[1] for p in pairs])
            if corr is not None:
                log_metric(f"{rewarder.name}/{LENGTH_CORR}", corr)
        return scores

    score.__name__ = rewarder.name
    return score


def schema_row(logs: dict[str, Any]) -> dict[str, Any]:
    """TRL's log keys in dynalign's metrics schema.

    `rewards/<name>/mean` becomes `<name>/mean`; a rewarder's own `<name>/pillar/<P>` becomes
    `pillar/<P>`; the worst `<name>/unscorable_rate` and the first `<name>/length_corr` also
    appear as `unscorable_rate` and `length_reward_corr`.
    """
    row: dict[str, Any] = {}
    for key, value in logs.items():
        if key in RENAMES:
            row[RENAMES[key]] = value
        elif key.startswith("rewards/"):
            row[key.split("/", 1)[1]] = value
        elif f"/{PILLAR_PREFIX}" in key:
            row[PILLAR_PREFIX + key.split(f"/{PILLAR_PREFIX}", 1)[1]] = value
        elif "/" in key and not key.startswith(("completions/", "sampling/", "clip_ratio")):
            row[key] = value
            if key.endswith(f"/{UNSCORABLE_RATE}"):
                row[UNSCORABLE_RATE] = max(row.get(UNSCORABLE_RATE, 0.0), value)
            elif key.endswith(f"/{LENGTH_CORR}"):
                row.setdefault("length_reward_corr", value)
    return row


class MetricsCallback(TrainerCallback):
    """Appends one metrics row per optimizer step through `sink` and shows a one-line
    progress bar with the latest reward (main process only; replaces TRL's log printing)."""

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self.sink = sink
        self._last = time.time()
        self._bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self._last = time.time()
        if state.is_world_process_zero:
            self._bar = tqdm(total=state.max_steps, initial=state.global_step, desc="grpo", unit="step")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = time.time()
        row: dict[str, Any] = {"step": state.global_step, "seconds": round(now - self._last, 3)}
        self._last = now
        row.update(schema_row(logs))
        self.sink(row)
        if self._bar is not None:
            self._bar.update(state.global_step - self._bar.n)
            self._bar.set_postfix(reward=_shown(row.get("reward_mean"), 3), loss=_shown(row.get("loss"), 4))


def _shown(number: float | None, digits: int) -> str:
    """A metric for the progress bar; `-` when the step had none (every completion unscorable)."""
    return "-" if number is None else f"{number:.{digits}f}"
