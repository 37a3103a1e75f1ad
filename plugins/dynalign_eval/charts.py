"""The report's figures as PNG bytes (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import io
from typing import Any

from dynalign.api import require


def _pyplot():
    require("matplotlib", "eval").use("Agg")
    return require("matplotlib.pyplot", "eval")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    return buffer.getvalue()


def series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(x, y) of the metric `key` over optimizer steps, skipping rows that lack it."""
    xs, ys = [], []
    for index, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, (int, float)):
            xs.append(index + 1)
            ys.append(float(value))
    return xs, ys


def reward_curve(rows: list[dict[str, Any]]) -> bytes | None:
    """Mean reward per step with a ±1 std band."""
    xs, mean = series(rows, "reward_mean")
    if not xs:
        return None
    std = [float(rows[x - 1].get("reward_std") or 0.0) for x in xs]
    fig, ax = _pyplot().subplots(figsize=(6, 3))
    ax.plot(xs, mean, color="#1f77b4", label="reward mean")
    ax.fill_between(
        xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.25, label="±1 std"
    )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("reward")
    ax.legend(loc="best")
    return _png(fig)


def line(rows: list[dict[str, Any]], key: str, label: str) -> bytes | None:
    """One metric over optimizer steps."""
    xs, ys = series(rows, key)
    if not xs:
        return None
    fig, ax = _pyplot().subplots(figsize=(4, 2.6))
    ax.plot(xs, ys, marker="." if len(xs) < 40 else None)
    ax.set_title(label, fontsize=10)
    ax.set_xlabel("optimizer step")
    return _png(fig)


def bars(labels: list[str], values: list[float], errors: list[tuple[float, float]] | None, title: str) -> bytes:
    """Bars with optional asymmetric error bars (as [low, high] absolute bounds)."""
    fig, ax = _pyplot().subplots(figsize=(max(3.5, 0.9 * len(labels) + 1.5), 2.8))
    yerr = None
    if errors:
        yerr = [
            [max(0.0, v - lo) for v, (lo, _) in zip(values, errors)],
            [max(0.0, hi - v) for v, (_, hi) in zip(values, errors)],
        ]
    ax.bar(labels, values, yerr=yerr, capsize=4, color="#2ca02c")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=20)
    return _png(fig)


def grouped(groups: list[str], series_values: dict[str, list[float]], title: str) -> bytes:
    """Grouped bars: one group per label, one bar per series (e.g. base vs aligned)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8))
    width = 0.8 / max(1, len(series_values))
    for i, (name, values) in enumerate(series_values.items()):
        ax.bar([g + i * width for g in range(len(groups))], values, width=width, label=name)
    ax.set_xticks([g + width * (len(series_values) - 1) / 2 for g in range(len(groups))], groups, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def histogram(values: list[float], title: str, xlabel: str) -> bytes:
    """A histogram of numbers."""
    fig, ax = _pyplot().subplots(figsize=(4, 2.6))
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="#9467bd")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    return _png(fig)
