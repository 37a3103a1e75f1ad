"""The report's efficacy and self-signal sections: did the value move into the weights, and
which self-signal trained it (measured how well)?"""

from __future__ import annotations

import html
from typing import Any

from dynalign_eval import charts

Page = Any  # report._Page (kept structural to avoid an import cycle)


def _ci(item: dict[str, Any]) -> str:
    low, high = item["ci95"]
    return f"{item['accuracy']:.1%} [{low:.1%}, {high:.1%}]"


def efficacy_section(page: Page, results: dict[str, Any], table: Any) -> None:
    """Implicit-reward and preference accuracy on held-out pairs, gap closed, one plot."""
    page.add("<h2>Efficacy without an outside judge</h2>")
    found = results.get("efficacy") or {}
    if not found:
        page.add("<p class='muted'>Not evaluated.</p>")
        return
    pairs, gap = found.get("pairs") or {}, found.get("gap") or {}
    held_out = found.get("split", "held_out") == "held_out"
    where = "held-out" if held_out else "calibration"
    unused = (
        "the pairs were never used to choose anything."
        if held_out
        else "<b>calibration</b> pairs and prompts: for choosing settings, not a result."
    )
    if "implicit_reward_per_token" in pairs:
        implicit = pairs["implicit_reward_per_token"]
        page.add(
            f"<p class='headline'>implicit-reward accuracy {_ci(implicit)} <span class='muted'>per token, "
            f"{found.get('n_pairs')} {where} labeled pairs (chance 50%)</span></p>"
            "<p>Is log &pi;<sub>aligned</sub>(y|x) &minus; log &pi;<sub>base</sub>(y|x) higher for the better answer "
            f"than for the worse one? No system prompt in either context; {unused}</p>"
            "<p>Likelihood-adjusted: the better answers of hard pairs are usually the <i>less</i> likely ones "
            "(specific rather than generic), so a model that only grew more random would raise them more and "
            "score above chance without learning the value. The adjusted accuracy first removes the part of "
            "each answer's change that its base likelihood predicts; where the two disagree, trust the "
            "adjusted one.</p>"
        )
        rows = [
            ("implicit reward, per token", _ci(implicit)),
            ("implicit reward, summed", _ci(pairs["implicit_reward_summed"])),
            ("unprompted preference, base (per token)", _ci(pairs["preference_base_per_token"])),
            ("unprompted preference, aligned (per token)", _ci(pairs["preference_aligned_per_token"])),
            ("unprompted preference, base (summed)", _ci(pairs["preference_base_summed"])),
            ("unprompted preference, aligned (summed)", _ci(pairs["preference_aligned_summed"])),
        ]
        if "implicit_reward_adjusted" in pairs:  # absent from results written before it existed
            rows.insert(2, ("implicit reward, likelihood-adjusted", _ci(pairs["implicit_reward_adjusted"])))
        page.add(table(rows, (f"{where} pairs", "accuracy [95% CI]")))
        keys = [
            ("implicit\nper token", "implicit_reward_per_token"),
            ("implicit\nsummed", "implicit_reward_summed"),
            ("implicit\nadjusted", "implicit_reward_adjusted"),
            ("preference\nbase", "preference_base_per_token"),
            ("preference\naligned", "preference_aligned_per_token"),
        ]
        keys = [(label, key) for label, key in keys if key in pairs]
        png = charts.bars(
            [label for label, _ in keys],
            [pairs[k]["accuracy"] for _, k in keys],
            [tuple(pairs[k]["ci95"]) for _, k in keys],
            f"{where} pair accuracy (95% CI; dashed: chance)",
        )
        page.add(f"<div class='figs'>{page.figure('efficacy', png, f'{where} pair accuracies')}</div>")
    elif pairs:
        page.add(f"<p class='muted'>{html.escape(str(pairs.get('skipped') or pairs.get('error')))}</p>")
    if "gap_closed" in gap:
        low, high = gap["ci95"]
        page.add(
            f"<p><b>Gap closed {gap['gap_closed']:.1%}</b> <span class='muted'>95% CI [{low:.1%}, {high:.1%}]</span>: "
            f"KL(&pi;<sub>base</sub>(&middot;|system,x) &#8741; &pi;(&middot;|x)) fell from {gap['kl_base_nats']:.2f} "
            f"(base) to {gap['kl_aligned_nats']:.2f} nats (aligned), on {gap['n_prompts']} {where} prompts "
            f"&times; {gap['samples_per_prompt']} samples of {gap['max_new_tokens']} tokens.</p>"
        )


def signal_section(page: Page, chosen: dict[str, Any] | None, checked: dict[str, Any] | None, table: Any) -> None:
    """Which self-signal was measured how well on the calibration pairs, and which trained."""
    measured = (chosen or {}).get("measured") or (checked or {}).get("signals") or {}
    if not measured:
        return
    page.add("<h2>Self-signals on the calibration pairs</h2>")
    if chosen and chosen.get("chosen"):
        page.add(
            f"<p>self-reward auto chose <b>{html.escape(chosen['chosen'])}</b> "
            f"({html.escape(chosen.get('reason', ''))}).</p>"
        )
        if chosen.get("warning"):
            page.add(f"<p class='warn'>{html.escape(chosen['warning'])}</p>")
    rows = [
        (name, f"{m['accuracy']:.1%}", m["ci95"], m["n"], m.get("accuracy_better_shorter"))
        for name, m in measured.items()
    ]
    page.add(table(rows, ("signal", "accuracy", "95% CI", "pairs", "accuracy where the better answer is shorter")))


def clipped_note(rows: list[dict[str, Any]]) -> str:
    """One sentence on how many training samples hit the length limit, first vs last quarter."""
    values = [r["clipped_fraction"] for r in rows if isinstance(r.get("clipped_fraction"), int | float)]
    if not values:
        return ""
    quarter = max(1, len(values) // 4)
    first, last = sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter
    return (
        f"<p>Clipped at the completion limit: {first:.0%} of samples in the first quarter of training, "
        f"{last:.0%} in the last.</p>"
    )
