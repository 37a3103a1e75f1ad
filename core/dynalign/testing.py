"""Plugin-author kit: fixtures and contract checks for testing dynalign plugins.

Enable it in a plugin's tests with `pytest -p dynalign.testing` (or `pytest_plugins =
["dynalign.testing"]` in conftest.py). Fixtures: `dynalign_registry` (a fresh registry of
what is installed), `ca_value`, `run_cli`. Helpers: `ScriptedChatModel`, `scripted_plugin`,
`check_value_spec`, `check_component`, `check_rewarder`. Fixtures that need a real model
backend come with its plugin: `tiny_model_dir` from `pytest -p dynalign_hf.testing`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from dynalign.api import ChatModel, Component, Conversation, GenerationParams, Options, Rewarder, RunContext
from dynalign.errors import RewarderError
from dynalign.hookspecs import hookimpl
from dynalign.plugins import load_registry, reset_registry
from dynalign.registry import Registry
from dynalign.rewards import checked_scores, logged_metrics
from dynalign.values import ValueSpec

Reply = Callable[[Conversation, int], str]


class ScriptedOptions(Options):
    """Options of the scripted test backend."""

    replies: list[str] = []
    probs: dict[str, float] = {}


class ScriptedChatModel(ChatModel):
    """A test backend: answers from a reply function, or cycles through `options.replies`.

    `calls` records every conversation it was asked, for assertions.
    """

    name = "scripted"
    Options = ScriptedOptions
    supports_token_probs = True
    reply: Reply | None = None

    def __init__(self, options: Options | None = None, context: RunContext | None = None) -> None:
        super().__init__(options, context)
        self.calls: list[Conversation] = []
        self._next = 0

    def chat(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        """Reply to each conversation `params.n` times."""
        out = []
        for conversation in conversations:
            self.calls.append(conversation)
            answers = []
            for sample in range(params.n):
                if self.reply is not None:
                    answers.append(self.reply(conversation, sample))
                else:
                    answers.append(self.options.replies[self._next % len(self.options.replies)])
                    self._next += 1
            out.append(answers)
        return out

    def next_token_probs(
        self, conversations: Sequence[Conversation], choices: Sequence[str], assistant_prefix: str = ""
    ) -> list[dict[str, float]]:
        """The configured `probs` for every conversation (0 for choices not given)."""
        self.calls.extend(conversations)
        return [{c: self.options.probs.get(c, 0.0) for c in choices} for _ in conversations]


def scripted_plugin(*classes: type[Component], dist: str = "dynalign-test-scripted") -> tuple[str, Any]:
    """An in-memory plugin registering the given component classes, for `load_registry(extra)`."""
    by_kind: dict[str, list[type[Component]]] = {}
    for cls in classes:
        by_kind.setdefault(cls.kind, []).append(cls)

    def hook(kind: str) -> Callable[..., None]:
        @hookimpl
        def register(register: Callable[..., None]) -> None:
            for cls in by_kind.get(kind, []):
                register(cls)

        return register

    module = SimpleNamespace(
        register_models=hook("model"),
        register_prompt_generators=hook("prompt_generator"),
        register_rewarders=hook("rewarder"),
        register_optimizers=hook("optimizer"),
    )
    return dist, module


def check_value_spec(spec: ValueSpec) -> None:
    """Contract for value packages: pillars, a rubric, a system prompt, calibration data."""
    assert spec.pillars, "a value needs pillars"
    assert spec.score_max > spec.score_min, "a rubric needs at least two scores"
    assert spec.system_prompt.strip(), "a value needs a system prompt"
    assert spec.seed_themes, "prompt generation needs seed themes"
    assert spec.calibration, "judge checks need calibration pairs"
    for pair in spec.calibration:
        assert pair.better.strip() != pair.worse.strip(), f"calibration pair for {pair.prompt!r} is not a contrast"


def check_component(cls: type[Component]) -> None:
    """Contract for components: a kebab-case name, docs, Options that reject unknown keys."""
    assert cls.name and cls.name == cls.name.lower() and " " not in cls.name, f"bad component name {cls.name!r}"
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} needs a docstring"
    try:
        cls.Options.model_validate({"surely_not_an_option": 1})
    except ValidationError:
        return
    raise AssertionError(f"{cls.__name__}.Options accepts unknown keys; subclass dynalign.api.Options")


def check_rewarder(
    rewarder: Rewarder, prompts: list[Any], completions: list[Any], **columns: Any
) -> list[float | None]:
    """Contract for rewarders (`dynalign.rewards`): one number or None per completion, and
    `pop_metrics()` keys that are bare (`unscorable_rate`, not `<name>/unscorable_rate`) with
    numeric values. Returns the scores as floats."""
    try:
        scores = checked_scores(rewarder.name, rewarder(prompts, completions, **columns), len(completions))
        logged_metrics(rewarder)
    except RewarderError as exc:
        raise AssertionError(str(exc)) from None
    return scores


@dataclass
class CliResult:
    """What a CLI invocation returned and printed."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.stdout)


def invoke_cli(*args: str) -> CliResult:
    """Run `dynalign ARGS` in-process with a fresh registry, capturing its output."""
    from dynalign import cli

    reset_registry()
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    reset_registry()
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def dynalign_registry() -> Registry:
    """A fresh registry of the installed plugins."""
    return load_registry()


@pytest.fixture
def ca_value(dynalign_registry: Registry) -> ValueSpec:
    """The installed Collective Agency value."""
    return dynalign_registry.get("value", "collective-agency").obj


@pytest.fixture
def run_cli() -> Callable[..., CliResult]:
    """`run_cli("plugins", "--json")` runs the CLI in-process and returns a CliResult."""
    return invoke_cli
