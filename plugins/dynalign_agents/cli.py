"""`dynalign prompts generate` and `dynalign prompts stats`. Heavy imports stay inside commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Generate prompt sets with LLM agents and inspect their diversity.", no_args_is_help=True)


@app.command("generate")
def generate(
    config: Annotated[
        Path, typer.Argument(help="Run config; its [prompts] table selects and configures the generator.")
    ],
    n: Annotated[
        int | None, typer.Option("--n", help="Prompts to make in total (overrides prompts.options.n).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default prompts/<config name>).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a stopped generation in --out.")] = False,
) -> None:
    """Make a prompt set: JSONL files, a `datasets` folder and a summary, in --out."""
    from dynalign.api import ConfigError, RunDirectory, open_stack, redact
    from dynalign_agents.generator import AgentsPromptGenerator
    from dynalign_agents.output import write_prompt_set

    if n is not None and n <= 0:
        raise ConfigError(f"--n must be a positive number of prompts, got {n}")
    flags = {"prompts": {"n": n}} if n is not None else None
    stack = open_stack(config, options=flags, check="prompts")  # e.g. an unset API key: refused before any folder
    value, generator = stack.value, stack.generator
    folder = out or Path("prompts") / config.stem
    record = {
        "value": value.name,
        "seed": stack.config.seed,
        "generator": stack.config.prompts.generator,
        "options": generator.options.model_dump(mode="json"),
    }
    with RunDirectory.prepare(folder, redact(record), resume).starting():  # a failed start leaves nothing
        if isinstance(generator, AgentsPromptGenerator):
            prompts = generator.generate_to(value, folder)
            summary = generator.last_summary
        else:
            prompts = generator.generate(value)
            summary = {"value": value.name, "train": len(prompts.train), "held_out": len(prompts.held_out)}
            write_prompt_set(folder, prompts, summary)
    rejections = ", ".join(f"{k} {v}" for k, v in summary.get("rejections", {}).items()) or "none"
    typer.echo(f"wrote {len(prompts.train)} train + {len(prompts.held_out)} held-out prompts to {folder}")
    typer.echo(f"rejections: {rejections}")
    if "calls" in summary:
        typer.echo(
            f"model calls: {json.dumps(summary['calls'])}; answers reused: {json.dumps(summary['reused_answers'])}"
        )


@app.command("stats")
def stats(
    folder: Annotated[Path, typer.Argument(help="A `prompts generate` folder, a run directory or a JSONL file.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the plots and stats.json (default FOLDER/stats).")
    ] = None,
    max_pairs: Annotated[int, typer.Option(help="Score at most this many pairs (a seeded sample beyond).")] = 20_000,
    threshold: Annotated[float, typer.Option(help="ROUGE-L level reported as 'share above'.")] = 0.7,
) -> None:
    """Histograms of pairwise ROUGE-L and prompt length (PNG), the numbers as JSON, a summary."""
    from dynalign.api import DynalignError, atomic_write_text, require_file
    from dynalign_agents.output import read_prompt_rows
    from dynalign_agents.stats import compute_stats, plot, summary_lines

    require_file(folder, "prompt set", hint="; point at a `prompts generate` output folder or a run directory")
    rows = read_prompt_rows(folder)
    if not rows:
        raise DynalignError(f"{folder} holds no prompts (train.jsonl / held_out.jsonl); point at a prompt set")
    if max_pairs < 1:
        raise DynalignError(f"--max-pairs must be at least 1, got {max_pairs}")
    target = out or (folder.parent if folder.is_file() else folder) / "stats"
    numbers, sims, lengths = compute_stats(rows, max_pairs=max_pairs, threshold=threshold)
    written = plot(sims, lengths, target, threshold)
    atomic_write_text(target / "stats.json", json.dumps(numbers, indent=2) + "\n")
    for line in summary_lines(numbers, threshold):
        typer.echo(line)
    typer.echo(f"wrote {', '.join(str(p) for p in [*written, target / 'stats.json'])}")
