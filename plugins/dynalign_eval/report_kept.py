"""The report's capability-kept (IFBench) and safety-kept (refusals) sections."""

from __future__ import annotations

import html
from typing import Any

from dynalign_eval import charts

Page = Any  # report._Page (kept structural to avoid an import cycle)
MODES = ("prompt_level_strict", "instruction_level_strict", "prompt_level_loose", "instruction_level_loose")


def _rate(item: dict[str, Any], signed: bool = False) -> str:
    low, high = item["ci95"]
    sign = "+" if signed else ""
    return f"{item['rate']:{sign}.1%} [{low:{sign}.1%}, {high:{sign}.1%}]"


def _note(page: Page, found: dict[str, Any], what: str) -> bool:
    """Say why a section has no numbers; True when it has none."""
    if "error" in found:
        page.add(f"<p class='err'>{what}: {html.escape(found['error'])}</p>")
    elif "skipped" in found:
        page.add(f"<p class='muted'>{what} skipped: {html.escape(found['skipped'])}</p>")
    elif not found:
        page.add(f"<p class='muted'>{what}: not evaluated.</p>")
    return not found or "error" in found or "skipped" in found


def capability_section(page: Page, results: dict[str, Any], table: Any) -> None:
    """IFBench accuracies of base and aligned, the paired difference, and what was skipped."""
    page.add("<h2>Did it stay capable? IFBench instruction following</h2>")
    found = results.get("ifbench") or {}
    if _note(page, found, "IFBench"):
        return
    head = found["prompt_level_strict"]
    page.add(
        f"<p class='headline'>prompt-level strict: base {_rate(head['base'])} &rarr; aligned "
        f"{_rate(head['aligned'])}; difference {_rate(head['difference'], True)}</p>"
    )
    rows = [
        (
            m.replace("_", " "),
            found[m]["n"],
            _rate(found[m]["base"]),
            _rate(found[m]["aligned"]),
            _rate(found[m]["difference"], True),
        )
        for m in MODES
    ]
    page.add(table(rows, ("metric", "n", "base [95% CI]", "aligned [95% CI]", "aligned − base [95% CI]")))
    data = {role: [found[m][role]["rate"] for m in MODES] for role in ("base", "aligned")}
    png = charts.grouped([m.replace("_level", "") for m in MODES], data, "IFBench accuracy")
    page.add(f"<div class='figs'>{page.figure('ifbench', png, 'IFBench base vs aligned')}</div>")
    why = "; ".join(f"{n} {html.escape(reason)}" for reason, n in found.get("skipped_why", {}).items())
    page.add(
        f"<p class='muted'>{found['n_prompts']} of {found.get('n_available', '?')} IFBench prompts, spread evenly "
        f"(<code>ifbench_limit</code> sizes this to a time budget); {found['n_scored']} scored by IFBench's own "
        "verifiers "
        f"({html.escape(str(found.get('source')))}, greedy answers of up to {found.get('max_new_tokens')} tokens); "
        f"intervals: paired bootstrap. Skipped for both models: {found['n_skipped']}{': ' + why if why else ''}.</p>"
    )


def _judge_cell(item: dict[str, Any], role: str) -> str:
    judged = (item.get("judge") or {}).get(role)
    if not judged or judged["rate"] is None:
        return "—"
    agree = judged["agreement_with_rule"]["agreement"]
    return f"{judged['rate']:.0%} (agrees with rule {agree:.0%})" if agree is not None else f"{judged['rate']:.0%}"


def safety_section(page: Page, results: dict[str, Any], table: Any) -> None:
    """Refusal rates on harmful sets, refusals of benign prompts, and answers side by side."""
    page.add("<h2>Did it stay safe? Refusals of harmful and benign requests</h2>")
    found = results.get("safety") or {}
    if _note(page, found, "Safety"):
        return
    rows, samples = [], []
    for name, item in found.get("sets", {}).items():
        if "skipped" in item:
            rows.append((name, "—", item["skipped"], "", "", "", ""))
            continue
        rows.append(
            (
                f"{name} (harmful: higher is safer; {item['n']} of {item['n_available']})",
                item["n"],
                _rate(item["base"]),
                _rate(item["aligned"]),
                _rate(item["difference"], True),
                _judge_cell(item, "base"),
                _judge_cell(item, "aligned"),
            )
        )
        samples += item.get("samples", [])
    benign = found.get("benign_refusal") or {}
    if "difference" in benign:
        row = (_rate(benign["base"]), _rate(benign["aligned"]), _rate(benign["difference"], True), "—", "—")
        rows.append((f"benign: {benign['source']} (lower is better)", benign["n"], *row))
    page.add(
        table(
            rows,
            ("prompts", "n", "base refusals", "aligned refusals", "aligned − base", "judge: base", "judge: aligned"),
        )
    )
    edgy = (found.get("edgy_over_refusal") or {}).get("skipped")
    page.add(
        f"<p class='muted'>Refusal rule: {html.escape(found.get('rule', ''))}. Prompts from "
        f"{html.escape(str(found.get('source')))}, spread evenly over each set (<code>safety_limit</code> sizes "
        f"this to a time budget), greedy answers of up to {found.get('max_new_tokens')} tokens; intervals: paired "
        "bootstrap."
        f"{' Benign-but-edgy over-refusal: ' + html.escape(edgy) + '.' if edgy else ''}</p>"
    )
    if samples:
        cells = [
            (
                s["set"],
                s["prompt"],
                s["base"],
                "refuses" if s["base_refusal"] else "complies",
                s["aligned"],
                "refuses" if s["aligned_refusal"] else "complies",
            )
            for s in samples
        ]
        page.add("<h3>Answers side by side</h3>")
        page.add(table(cells, ("set", "prompt", "base", "rule", "aligned", "rule"), cls="samples"))
