"""Diversity statistics of a prompt set: pairwise ROUGE-L and prompt length (the paper's Figure 3)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from dynalign.api import require

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def _pairs(count: int, max_pairs: int, seed: int) -> tuple[list[tuple[int, int]], bool]:
    total = count * (count - 1) // 2
    if total <= max_pairs:
        return [(i, j) for i in range(count) for j in range(i + 1, count)], False
    rng, chosen = random.Random(seed), set()
    while len(chosen) < max_pairs:
        i, j = rng.sample(range(count), 2)
        chosen.add((min(i, j), max(i, j)))
    return sorted(chosen), True


def _histogram(values: list[float], bins: Any) -> dict[str, list[float]]:
    import numpy as np

    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def compute_stats(
    rows: list[dict[str, Any]], max_pairs: int = 20_000, seed: int = 0, threshold: float = 0.7
) -> tuple[dict[str, Any], list[float], list[int]]:
    """(numbers, pairwise ROUGE-L scores, lengths in words) for the prompts in `rows`.

    With more than `max_pairs` pairs, a seeded uniform sample of pairs is scored.
    """
    import numpy as np

    from dynalign_agents.filters import _MemoTokenizer

    rouge = require("rouge_score.rouge_scorer", "prompts")

    texts = [row["prompt"] for row in rows]
    scorer = rouge.RougeScorer(["rougeL"], tokenizer=_MemoTokenizer())
    pairs, sampled = _pairs(len(texts), max_pairs, seed)
    sims = [scorer.score(texts[i], texts[j])["rougeL"].fmeasure for i, j in pairs]
    lengths = [len(text.split()) for text in texts]
    sim_array = np.asarray(sims or [0.0])
    stats = {
        "count": len(texts),
        "splits": dict(Counter(row.get("split", "all") for row in rows)),
        "pairs_scored": len(pairs),
        "pairs_sampled": sampled,
        "rouge_l": {
            "mean": round(float(sim_array.mean()), 4),
            "median": round(float(np.median(sim_array)), 4),
            "p90": round(float(np.quantile(sim_array, 0.9)), 4),
            "max": round(float(sim_array.max()), 4),
            f"share_at_or_above_{threshold}": round(float((sim_array >= threshold).mean()) if sims else 0.0, 4),
            "histogram": _histogram(sims, np.linspace(0, 1, 21)),
        },
        "length_words": {
            "mean": round(float(np.mean(lengths)), 2),
            **{f"q{int(q * 100)}": float(np.quantile(lengths, q)) for q in QUANTILES},
            "histogram": _histogram(lengths, 20),
        },
        "pillars": dict(sorted(Counter(str(row.get("pillar") or "none") for row in rows).items())),
    }
    return stats, sims, lengths


def plot(sims: list[float], lengths: list[int], folder: Path, threshold: float = 0.7) -> list[Path]:
    """Write `rouge_l.png` and `length.png` (histograms) into `folder`; returns their paths."""
    require("matplotlib", "prompts").use("Agg")
    plt = require("matplotlib.pyplot", "prompts")

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, values, bins, xlabel in (
        ("rouge_l.png", sims, [i / 20 for i in range(21)], "ROUGE-L F between two prompts"),
        ("length.png", lengths, 20, "prompt length (words)"),
    ):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
        if name == "rouge_l.png":
            ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"filter threshold {threshold}")
            ax.legend()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("pairs" if name == "rouge_l.png" else "prompts")
        fig.tight_layout()
        fig.savefig(folder / name, dpi=120)
        plt.close(fig)
        written.append(folder / name)
    return written


def summary_lines(stats: dict[str, Any], threshold: float = 0.7) -> list[str]:
    """A short console summary of `stats`."""
    sim, length = stats["rouge_l"], stats["length_words"]
    splits = ", ".join(f"{k} {v}" for k, v in stats["splits"].items())
    pillars = ", ".join(f"{k} {v}" for k, v in stats["pillars"].items())
    sampled = " (sampled)" if stats["pairs_sampled"] else ""
    return [
        f"prompts: {stats['count']} ({splits})",
        f"pairwise ROUGE-L over {stats['pairs_scored']} pairs{sampled}: mean {sim['mean']:.3f}, "
        f"median {sim['median']:.3f}, max {sim['max']:.3f}, share >= {threshold}: "
        f"{sim[f'share_at_or_above_{threshold}']:.2%}",
        f"length (words): min {length['q0']:g}, p10 {length['q10']:g}, median {length['q50']:g}, "
        f"p90 {length['q90']:g}, max {length['q100']:g}",
        f"pillars: {pillars}",
    ]
