"""The `dynalign` command line. Keep imports light: `dynalign plugins` must start fast."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from dynalign.errors import DynalignError
from dynalign.files import file_error
from dynalign.plugins import get_registry
from dynalign.redaction import redact_urls
from dynalign.registry import KINDS
from dynalign.scoring import score

app = typer.Typer(
    help="Align a language model to an open-ended value, with no human labels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help text is printed as written: `[[rewarders]]` is not markup
)
values_app = typer.Typer(help="Inspect installed values.", no_args_is_help=True)
config_app = typer.Typer(help="Check configs and show their schema.", no_args_is_help=True)
app.add_typer(values_app, name="values")
app.add_typer(config_app, name="config")
_show_traceback = False
# Deprecations raised inside the libraries the built-in plugins call (transformers, TRL, PEFT),
# which a user of the command line cannot act on: they would only interleave with progress bars.
LIBRARY_DEPRECATIONS = (
    r"`past_key_values` is deprecated",
    r"`is_gradient_checkpointing` is deprecated",
    r".*`gradient_checkpointing.*` is deprecated",
)


@app.callback()
def _main(
    traceback: Annotated[bool, typer.Option("--traceback", help="Show the full error chain.")] = False,
) -> None:
    global _show_traceback
    _show_traceback = traceback


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List installed plugin distributions, their status and components; exit 1 if any failed."""
    registry = get_registry()
    infos = [vars(info) for info in sorted(registry.plugins.values(), key=lambda i: i.name)]
    if as_json:
        _echo_json(infos)
    else:
        for info in infos:
            parts = ", ".join(f"{c['kind']}:{c['name']}" for c in info["components"])
            typer.echo(f"{info['name']} {info['version']} [{info['status']}] {parts}")
    failed = registry.failed()
    if failed:
        raise DynalignError(f"{len(failed)} plugin(s) failed to load: {', '.join(p.name for p in failed)}")


def summary_of(doc: str | None) -> str:
    """A docstring's first paragraph as one line (never cut mid-sentence)."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


@app.command()
def components(
    kind: Annotated[str | None, typer.Option(help=f"One of {', '.join(KINDS)}.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List components with their aliases, origin and options schema."""
    registry = get_registry()
    if kind is not None and kind.replace("-", "_") not in KINDS:
        raise DynalignError(f"unknown kind {kind!r}. Choose one of: {', '.join(KINDS)}")
    rows = []
    for k in [kind.replace("-", "_")] if kind else KINDS:
        for entry in registry.entries(k):
            schema = None if k == "value" else entry.obj.Options.model_json_schema()
            doc = entry.obj.title if k == "value" else summary_of(entry.obj.__doc__)
            rows.append(
                {
                    "kind": k,
                    "name": entry.name,
                    "aliases": list(entry.aliases),
                    "distribution": entry.distribution,
                    "summary": doc,
                    "options": schema,
                }
            )
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        typer.echo(f"{row['kind']:<16} {row['name']}{aliases} — {row['summary']} [{row['distribution']}]")
        for option, spec in ((row["options"] or {}).get("properties") or {}).items():
            default = f" = {spec['default']!r}" if "default" in spec else ""
            typer.echo(f"{'':<18}{option}{default}")


@values_app.command("show")
def values_show(name: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show a value's definition, pillars and rubric."""
    spec = get_registry().get("value", name).obj
    if as_json:
        _echo_json(spec.model_dump())
        return
    typer.echo(f"{spec.title} ({spec.name})\n\n{spec.definition.strip()}\n\nPillars:\n{spec.pillars_text()}")
    typer.echo(f"\nRubric:\n{spec.rubric_text()}\n\nSystem prompt:\n{spec.system_prompt.strip()}")
    typer.echo(
        f"\n{len(spec.seed_themes)} seed themes, {len(spec.calibration)} calibration pairs, "
        f"{len(spec.prompts)} bundled prompts"
    )


@config_app.command("check")
def config_check(path: Path) -> None:
    """Validate a config: its shape, every component's options, and the optimizer's settings."""
    from dynalign.opening import open_stack, preflight

    stack = open_stack(path)
    config = stack.config
    stack.optimizer.check(stack.policy, stack.value)
    preflight(stack)
    rewarders = ", ".join(f"{r.name} (weight {r.weight:g})" for r in config.rewarders)
    typer.echo(
        f"ok: value={stack.value.name} policy={config.policy.backend} prompts={config.prompts.generator} "
        f"rewarders=[{rewarders}] optimizer={config.optimizer.name} stages=[{', '.join(s.name for s in config.stages)}]"
    )


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of a run config."""
    from dynalign.runconfig import RunConfig

    _echo_json(RunConfig.model_json_schema())


@app.command("run")
def run_command(
    config: Annotated[Path | None, typer.Argument(help="Config file; none runs the default CA stack.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<config name>).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a stopped run in --out.")] = False,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Measure afresh, not from the measurement cache (DYNALIGN_NO_CACHE=1)."),
    ] = False,
) -> None:
    """Run a config: prompts, rounds of training, results in a run directory."""
    from dynalign.config import load_config
    from dynalign.loop import run
    from dynalign.measured import NO_CACHE_ENV

    if no_cache:
        os.environ[NO_CACHE_ENV] = "1"

    run(load_config(config), source=str(config) if config else None, out=out, resume=resume, say=typer.echo)


app.command("score")(score)

_added_commands: set[int] = set()


def _add_plugin_commands() -> None:
    """Attach plugins' commands to the app, each once per process (main() may run repeatedly)."""
    for command, name in get_registry().commands:
        if id(command) in _added_commands:
            continue
        _added_commands.add(id(command))
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name=name)(command)


def _library_exceptions() -> tuple[type[Exception], type[BaseException]]:
    """The usage-error base class and the abort class of the click that typer runs on.

    Typer 0.29 vendors its own click (`typer._click`) while older releases use the click
    package, so both are found through typer's public names, never by importing click.
    """
    errors = sys.modules[typer.BadParameter.__module__]
    return errors.ClickException, typer.Abort


def usage_line(exc: Exception) -> str:
    """A usage error as one line: what is wrong and where the command's help is."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "dynalign"
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    return f"error: {message} (see '{command} --help')"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; a DynalignError or a usage error becomes one line on stderr
    and a non-zero exit."""
    args = sys.argv[1:] if argv is None else argv
    for message in LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    click_error, abort = _library_exceptions()
    try:
        _add_plugin_commands()
        code = app(args=args, prog_name="dynalign", standalone_mode=False)
    except DynalignError as exc:
        if _show_traceback or "--traceback" in args:
            raise
        typer.echo(f"error: {redact_urls(str(exc))}", err=True)
        return exc.exit_code
    except OSError as exc:  # a user file or folder that cannot be read or written
        if _show_traceback or "--traceback" in args:
            raise
        typer.echo(f"error: {redact_urls(file_error(exc))}", err=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except click_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group called bare: its help, as asked
            exc.show()  # type: ignore[attr-defined]
        else:
            typer.echo(redact_urls(usage_line(exc)), err=True)
        return exc.exit_code  # type: ignore[attr-defined]
    except abort:
        typer.echo("aborted", err=True)
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
