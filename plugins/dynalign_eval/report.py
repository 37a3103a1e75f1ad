"""`dynalign report`: one self-contained HTML page (PNGs inlined, and also saved beside it)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from dynalign.api import RunDirectory, atomic_write_text
from dynalign_eval import charts
from dynalign_eval.options import EvalError, ReportOptions
from dynalign_eval.promptstats import numeric_lists, prompt_stats, scalars
from dynalign_eval.report_efficacy import clipped_note, efficacy_section, signal_section
from dynalign_eval.report_kept import capability_section, safety_section

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.3em .6em;vertical-align:top;
text-align:left}th{background:#f4f4f4}.figs{display:flex;flex-wrap:wrap;gap:1em}.figs figure{margin:0}
.headline{font-size:1.4em;font-weight:600}.warn{background:#fff3cd;padding:.5em 1em;border-left:4px solid #e0a800}
.err{background:#f8d7da;padding:.5em 1em;border-left:4px solid #c00}.samples td{max-width:420px;white-space:pre-wrap;
font-size:.9em}.muted{color:#777}
"""
# Marks images that failed to load, visibly for readers and as a data attribute for checks.
CHECK_IMAGES = """
window.addEventListener('load', function () {
  var bad = Array.prototype.filter.call(document.images, function (i) { return !(i.complete && i.naturalWidth > 0); });
  bad.forEach(function (i) { i.insertAdjacentText('afterend', '[image failed to load: ' + i.alt + ']'); });
  document.body.setAttribute('data-images', String(document.images.length));
  document.body.setAttribute('data-broken-images', String(bad.length));
});
"""


class _Page:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts: list[str] = []
        self.images: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, name: str, png: bytes | None, caption: str) -> str:
        if png is None:
            return ""
        (self.folder / f"{name}.png").write_bytes(png)
        self.images.append(f"{name}.png")
        data = base64.b64encode(png).decode()
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption class='muted'>{html.escape(caption)}</figcaption></figure>"
        )


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...] | None = None, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return html.escape("—" if value is None else str(value))


def _training(page: _Page, rows: list[dict[str, Any]]) -> None:
    page.add("<h2>Training</h2>")
    if not rows:
        page.add("<p class='muted'>No training metrics (metrics.jsonl is empty or missing).</p>")
        return
    figs = [page.figure("reward", charts.reward_curve(rows), "reward mean with ±1 std band")]
    for key, label in [
        ("zero_std_fraction", "zero-variance group fraction"),
        ("unscorable_rate", "unscorable (unparsable) rate"),
        ("completion_length", "completion length"),
        ("clipped_fraction", "clipped at the length limit"),
        ("kl", "KL to the reference policy"),
    ]:
        figs.append(page.figure(key, charts.line(rows, key, label), label))
    page.add(f"<p>{len(rows)} optimizer steps.</p>{clipped_note(rows)}<div class='figs'>{''.join(figs)}</div>")


def _win_rate(page: _Page, results: dict[str, Any]) -> None:
    page.add("<h2>Value win rate: aligned vs base</h2>")
    win = results.get("win_rate") or {}
    if "error" in win:
        page.add(f"<p class='err'>{html.escape(win['error'])}</p>")
        return
    if "win_rate" not in win:
        page.add("<p class='muted'>Not evaluated (run <code>dynalign eval RUN_DIR</code>).</p>")
        return
    judge = results.get("models", {}).get("judge", {})
    if results.get("self_judged"):
        page.add(
            "<p class='warn'>Self-judged: the judge is the base policy itself, so this is the model's own view.</p>"
        )
    low, high = win["ci95"]
    page.add(
        f"<p class='headline'>{win['win_rate']:.1%} <span class='muted'>95% CI [{low:.1%}, {high:.1%}]</span>; "
        f"length-controlled {win['lc_win_rate']:.1%}</p><p>{win['n']} held-out prompts, each judged in both orders "
        f"(disagreement = tie = 0.5): {win['wins']} wins, {win['ties']} ties, {win['losses']} losses. "
        f"Judge: <code>{html.escape(json.dumps({k: v for k, v in judge.items() if k != 'path'}))}</code> "
        f"({html.escape(str(win.get('judge_mode')))}).</p>"
    )
    pillars = win.get("per_pillar", {})
    labels, values, errors = ["overall"], [win["win_rate"]], [tuple(win["ci95"])]
    for name, item in pillars.items():
        labels.append(name)
        values.append(item["win_rate"])
        errors.append(tuple(item["ci95"]))
    png = charts.bars(labels, values, errors, "win rate (95% CI)")
    page.add(f"<div class='figs'>{page.figure('win_rate', png, 'win rate overall and per pillar')}</div>")
    page.add(
        _table(
            [(n, i["n"], i["win_rate"], i["ci95"]) for n, i in pillars.items()], ("pillar", "n", "win rate", "95% CI")
        )
    )
    page.add(
        _table(
            [
                ("length-controlled 95% CI", win.get("lc_ci95")),
                ("aligned preferred when shown first", win.get("aligned_preferred_when_first")),
                ("aligned preferred when shown second", win.get("aligned_preferred_when_second")),
                ("position-bias rate", win.get("position_bias_rate")),
                ("unparsable verdicts", win.get("unparsable_rate")),
                (
                    "mean length base / aligned (chars)",
                    f"{win['mean_length']['base']:.0f} / {win['mean_length']['aligned']:.0f}",
                ),
            ]
        )
    )


def _ifeval(page: _Page, results: dict[str, Any]) -> None:
    page.add("<h2>Capability: IFEval and further tasks</h2>")
    ife = results.get("ifeval") or {}
    if "error" in ife or "skipped" in ife:
        page.add(
            f"<p class='{'err' if 'error' in ife else 'muted'}'>IFEval: "
            f"{html.escape(ife.get('error') or ife['skipped'])}</p>"
        )
    elif "base" in ife:
        metrics = ["prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"]
        short = [m.replace("_acc", "").replace("_level", "") for m in metrics]
        data = {role: [ife[role][m] for m in metrics] for role in ("base", "aligned")}
        png = charts.grouped(short, data, "IFEval accuracy")
        page.add(f"<div class='figs'>{page.figure('ifeval', png, 'IFEval base vs aligned')}</div>")
        page.add(_table([(m, ife["base"][m], ife["aligned"][m]) for m in metrics], ("metric", "base", "aligned")))
        page.add(
            f"<p class='muted'>{ife['base']['n_prompts']} prompts from {html.escape(str(ife['source']))}; "
            f"tokenizers: {html.escape(str(ife.get('tokenizers')))}.</p>"
        )
    tasks = results.get("tasks") or {}
    if isinstance(tasks, dict) and tasks and "error" not in tasks:
        rows = [(t, role, json.dumps(r)[:300]) for t, roles in tasks.items() for role, r in roles.items()]
        page.add(_table(rows, ("lm-eval task", "model", "result")))


def _judge_check(page: _Page, results: dict[str, Any], before: dict[str, Any] | None) -> None:
    page.add("<h2>Judge check (calibration pairs)</h2>")
    keys = [
        "n_pairs",
        "mode",
        "pointwise_accuracy",
        "pairwise_accuracy",
        "pairwise_consistent_accuracy",
        "position_bias_rate",
    ]
    shown = [(label, c) for label, c in (("before training", before), ("eval judge", results.get("judge_check"))) if c]
    if not shown:
        page.add("<p class='muted'>No judge-check results.</p>")
        return
    rows = [(k, *[c.get(k, c.get("error") or c.get("skipped")) for _, c in shown]) for k in keys]
    page.add(_table(rows, ("metric", *[label for label, _ in shown])))


def _prompts(page: _Page, run_dir: RunDirectory) -> None:
    page.add("<h2>Prompt set</h2>")
    stats = prompt_stats(run_dir)
    if "counts" in stats:
        counts, pillars = stats["counts"], stats["pillars"]
        page.add(
            f"<p>{counts['train']} train, {counts['held_out']} held-out prompts. "
            f"Pillars: {html.escape(', '.join(f'{k} {v}' for k, v in pillars.items()))}.</p>"
        )
        figs = [
            page.figure(
                "prompt_lengths", charts.histogram(stats["lengths"], "prompt length", "words"), "prompt lengths"
            ),
            page.figure(
                "prompt_similarity",
                charts.histogram(stats["similarity"], "nearest-prompt similarity", "word Jaccard"),
                "similarity to the nearest other prompt",
            ),
        ]
        page.add(f"<div class='figs'>{''.join(figs)}</div>")
    recorded = stats["recorded"]
    if recorded is not None:
        lists = numeric_lists(recorded)
        figs = [
            page.figure(f"stats_{i}", charts.histogram(v, k, k), f"prompt_stats.json: {k}")
            for i, (k, v) in enumerate(lists.items())
        ]
        page.add(f"<h3>prompt_stats.json</h3><div class='figs'>{''.join(figs)}</div>")
        page.add(_table(list(scalars(recorded).items()), ("statistic", "value")))


def _samples(page: _Page, results: dict[str, Any], count: int) -> None:
    pairs = (results.get("win_rate") or {}).get("pairs") or []
    page.add("<h2>Samples: base vs aligned</h2>")
    if not pairs:
        page.add("<p class='muted'>No samples.</p>")
        return
    rows = [(p["prompt"], p.get("pillar"), p["base"], p["aligned"], p["preference"]) for p in pairs[:count]]
    page.add(_table(rows, ("prompt", "pillar", "base", "aligned", "preference for aligned"), cls="samples"))


def write_report(run_dir: RunDirectory | Path, options: ReportOptions | None = None) -> Path:
    """Write RUN_DIR/report/index.html (and its PNGs); returns the page's path."""
    run_dir = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(Path(run_dir))
    options = options or ReportOptions()
    record = run_dir.read_json(RunDirectory.CONFIG)
    if record is None:
        raise EvalError(f"{run_dir.root} is not a dynalign run directory (no config.json)")
    folder = Path(options.out) if options.out else run_dir.path("report")
    folder.mkdir(parents=True, exist_ok=True)
    results = run_dir.read_json("eval/results.json") or {}
    page = _Page(folder)
    status = results.get("status", "not evaluated")
    page.add(f"<h1>dynalign report: {html.escape(run_dir.root.name)}</h1>")
    page.add(
        f"<p>Value <b>{html.escape(str(record['config'].get('value')))}</b>; "
        f"evaluation status <b>{html.escape(status)}</b>.</p>"
    )
    if results.get("errors"):
        items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in results["errors"].items())
        page.add(f"<div class='err'>Partial results; failed sections:<ul>{items}</ul></div>")
    models = results.get("models") or {}
    if models:
        page.add(
            _table(
                [(role, m.get("backend"), m.get("model"), m.get("weights_sha256")) for role, m in models.items()],
                ("role", "backend", "model", "weights sha256"),
            )
        )
    _training(page, run_dir.read_jsonl(RunDirectory.METRICS))
    efficacy_section(page, results, _table)
    signal_section(page, run_dir.read_json("self_reward_signal.json"), run_dir.read_json("judge_check.json"), _table)
    _win_rate(page, results)
    _ifeval(page, results)
    capability_section(page, results, _table)
    safety_section(page, results, _table)
    _judge_check(page, results, run_dir.read_json("judge_check.json"))
    _prompts(page, run_dir)
    _samples(page, results, options.samples)
    document = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>dynalign report: "
        f"{html.escape(run_dir.root.name)}</title><style>{STYLE}</style></head><body>{''.join(page.parts)}"
        f"<script>{CHECK_IMAGES}</script></body></html>"
    )
    target = folder / "index.html"
    atomic_write_text(target, document)
    return target
