"""`dynalign score CONFIG INPUT.jsonl --out OUT.jsonl`: score (prompt, completion) rows with the
config's rewarders, without training."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from dynalign.files import numbered_jsonl


def _read_rows(path: Path) -> list[dict[str, Any]]:
    from dynalign.errors import DynalignError

    if not path.exists():
        raise DynalignError(f"input file {path} does not exist")
    rows = []
    for number, row in numbered_jsonl(path):
        if not all(isinstance(row.get(key), str | list) for key in ("prompt", "completion")):
            raise DynalignError(f"{path}:{number}: each row needs `prompt` and `completion` (strings or messages)")
        rows.append(row)
    if not rows:
        raise DynalignError(f"input file {path} holds no rows")
    return rows


def _finite(value: float | None) -> float | None:
    """A reward as JSON can hold it: NaN and infinities become None (unscored)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _batches(rows: list[dict[str, Any]], size: int) -> list[list[int]]:
    """Row indices in batches of about `size`, never splitting the candidates of one prompt
    (pairwise and groupwise judges compare them)."""
    from dynalign.judging import prompt_text
    from dynalign_judge.support import group_indices

    batches: list[list[int]] = [[]]
    for group in group_indices([json.dumps(prompt_text(r["prompt"])) for r in rows]):
        if batches[-1] and len(batches[-1]) + len(group) > size:
            batches.append([])
        batches[-1].extend(group)
    return batches


def score(
    config: Annotated[Path, typer.Argument(help="Config whose [[rewarders]] score the rows.")],
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT.jsonl", help="Rows with `prompt` and `completion` (strings or messages).")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the rows with their rewards (JSON lines).")],
    run_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for the verdict cache, API usage and records (default: OUT without suffix + .run)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per rewarder call.")] = 64,
) -> None:
    """Score (prompt, completion) rows with the config's rewarders (e.g. a judge), without training."""
    from tqdm import tqdm

    from dynalign.config import load_config
    from dynalign.context import RunContext
    from dynalign.errors import ModelError
    from dynalign.files import atomic_write_text, check_writable, ensure_folder
    from dynalign.plugins import get_registry
    from dynalign.stack import preflight
    from dynalign_judge.support import JudgeError

    cfg = load_config(config)
    rows = _read_rows(input_file)
    folder = run_dir or out.with_suffix(".run")
    check_writable(out)
    check_writable(folder, folder=True)
    registry = get_registry()
    context = RunContext(registry.get("value", cfg.value).obj, registry, folder, cfg.seed, str(config))
    rewarders = [
        (ref, context.build("rewarder", ref.name, ref.options, f"rewarders[{i}].options"))
        for i, ref in enumerate(cfg.rewarders)
    ]
    preflight(cfg, context)
    names = [
        ref.name if [r.name for r, _ in rewarders].count(ref.name) == 1 else f"{ref.name}#{i}"
        for i, (ref, _) in enumerate(rewarders)
    ]
    ensure_folder(folder)
    results: dict[int, dict[str, float | None]] = {}
    for batch in tqdm(_batches(rows, batch_size), desc="scoring", unit="batch", disable=None):
        prompts = [rows[i]["prompt"] for i in batch]
        completions = [rows[i]["completion"] for i in batch]
        for name, (_, rewarder) in zip(names, rewarders):
            try:
                scores = rewarder(prompts, completions)
            except (ModelError, JudgeError) as exc:  # a failing endpoint: keep what was scored
                done = sum(1 for row in results.values() if any(v is not None for v in row.values()))
                raise type(exc)(
                    f"{exc}; {done} of {len(rows)} rows were scored before (verdicts cached in {folder}): "
                    "rerun the same command to resume"
                ) from exc
            for index, value in zip(batch, scores):
                results.setdefault(index, {})[name] = _finite(value)
    lines = []
    for index, row in enumerate(rows):
        rewards = results[index]
        weighted = [ref.weight * rewards[n] for n, (ref, _) in zip(names, rewarders) if rewards[n] is not None]
        reward = _finite(sum(weighted)) if weighted else None
        lines.append(json.dumps({**row, "rewards": rewards, "reward": reward}, allow_nan=False) + "\n")
    atomic_write_text(out, "".join(lines))
    summary = {k: _finite(v) for _, rewarder in rewarders for k, v in rewarder.pop_metrics().items()}
    summary = {k: round(v, 4) if v is not None else None for k, v in summary.items()}
    unscored = sum(1 for line in lines if json.loads(line)["reward"] is None)
    typer.echo(f"scored {len(rows)} rows ({unscored} unscored) with {', '.join(names)}; wrote {out}")
    typer.echo(json.dumps(summary, sort_keys=True))
