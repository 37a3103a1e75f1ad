"""`dynalign score CONFIG INPUT.jsonl --out OUT.jsonl`: score (prompt, completion) rows with the
config's rewarders (any: a judge, self-reward, a third party's), without training."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from dynalign.errors import DynalignError, JudgeError, ModelError
from dynalign.files import atomic_write_text, check_writable, ensure_folder, numbered_jsonl, require_file
from dynalign.judging.prompts import group_indices, prompt_text
from dynalign.messages import as_conversation
from dynalign.opening import open_stack
from dynalign.rewards import MEAN, checked_scores, logged_metrics


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """The input rows with their line numbers (`_line`) and their prompt and completion in the
    conversational form every rewarder receives (`_prompt`, `_completion`)."""
    require_file(path, "input file")
    rows = []
    for number, row in numbered_jsonl(path):
        if not isinstance(row, dict) or "prompt" not in row or "completion" not in row:
            raise DynalignError(f"{path}:{number}: each row needs `prompt` and `completion` (strings or messages)")
        try:
            prompt, completion = as_conversation(row["prompt"], "user"), as_conversation(row["completion"], "assistant")
        except ValueError as exc:
            raise DynalignError(f"{path}:{number}: `prompt` and `completion` {exc}") from exc
        rows.append({"_line": number, "_prompt": prompt, "_completion": completion, "row": row})
    if not rows:
        raise DynalignError(f"input file {path} holds no rows")
    return rows


def _call(name: str, rewarder: Any, rows: list[dict[str, Any]], batch: list[int]) -> list[float | None]:
    """The rewarder's scores for a batch of rows; an unexpected exception it raises becomes a
    DynalignError naming the rewarder and the first row (line of INPUT) it fails on alone."""

    def run(indices: list[int]) -> list[float | None]:
        scores = rewarder([rows[i]["_prompt"] for i in indices], [rows[i]["_completion"] for i in indices])
        return checked_scores(name, scores, len(indices))

    try:
        return run(batch)
    except DynalignError:
        raise  # already one line saying what to fix (a missing API key, an unreachable server)
    except Exception as exc:
        culprit = next((i for i in batch if _fails(run, i)), None)
        lines = [rows[i]["_line"] for i in batch]
        where = f"row {rows[culprit]['_line']}" if culprit is not None else f"rows {min(lines)}-{max(lines)}"
        raise DynalignError(f"rewarder {name!r} failed on {where}: {type(exc).__name__}: {exc}") from exc


def _fails(run: Any, index: int) -> bool:
    try:
        run([index])
    except Exception:
        return True
    return False


def _finite(value: float | None) -> float | None:
    """A reward as JSON can hold it: NaN and infinities become None (unscored)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _batches(rows: list[dict[str, Any]], size: int) -> list[list[int]]:
    """Row indices in batches of about `size`, never splitting the candidates of one prompt
    (pairwise and groupwise judges compare them)."""
    batches: list[list[int]] = [[]]
    for group in group_indices([json.dumps(prompt_text(r["_prompt"])) for r in rows]):
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

    rows = _read_rows(input_file)
    folder = run_dir or out.with_suffix(".run")
    check_writable(out)
    check_writable(folder, folder=True)
    stack = open_stack(config, run_dir=folder, say=_to_stderr, check=True, bind=True)
    rewarders = [(ref, weighted.rewarder) for ref, weighted in zip(stack.config.rewarders, stack.rewarders)]
    names = [
        ref.name if [r.name for r, _ in rewarders].count(ref.name) == 1 else f"{ref.name}#{i}"
        for i, (ref, _) in enumerate(rewarders)
    ]
    ensure_folder(folder)
    results: dict[int, dict[str, float | None]] = {}
    for batch in tqdm(_batches(rows, batch_size), desc="scoring", unit="batch", disable=None):
        for name, (_, rewarder) in zip(names, rewarders):
            try:
                scores = _call(name, rewarder, rows, batch)
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
        lines.append({**row["row"], "rewards": rewards, "reward": _finite(sum(weighted)) if weighted else None})
    summary = _summary(names, [r for _, r in rewarders], lines)  # checks the metric keys before writing
    atomic_write_text(out, "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines))
    typer.echo(
        f"scored {len(rows)} rows ({sum(line['reward'] is None for line in lines)} unscored) with "
        f"{', '.join(names)}; wrote {out}"
    )
    typer.echo(json.dumps(summary, sort_keys=True))


def _to_stderr(line: str) -> None:
    """Where the components' decisions go (stdout holds the results)."""
    typer.echo(line, err=True)


def _summary(names: list[str], rewarders: list[Any], lines: list[dict[str, Any]]) -> dict[str, float]:
    """Means and diagnostics under the keys a training run's metrics use: `reward_mean`,
    `<rewarder>/mean`, `<rewarder>/<diagnostic>`."""
    out: dict[str, float] = {}
    for name, rewarder in zip(names, rewarders):
        scores = [line["rewards"][name] for line in lines if line["rewards"][name] is not None]
        if scores:
            out[f"{name}/{MEAN}"] = sum(scores) / len(scores)
        out.update(logged_metrics(rewarder, name))
    totals = [line["reward"] for line in lines if line["reward"] is not None]
    if totals:
        out["reward_mean"] = sum(totals) / len(totals)
    return {key: round(value, 4) for key, value in out.items() if math.isfinite(value)}
