"""Every hook has its own test here, and README.md documents each under its signature."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import typer

from dynalign.api import Optimizer, PromptGenerator, PromptSet, Rewarder, Stage
from dynalign.hookspecs import HOOK_NAMES, hookimpl
from dynalign.plugins import load_registry
from dynalign.testing import ScriptedChatModel
from dynalign.values import ValueSpec

README = Path(__file__).resolve().parents[1] / "README.md"


def _plugin(**hooks):
    return "dynalign-hooktest", SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


def _registry(**hooks):
    registry = load_registry(extra_plugins=[_plugin(**hooks)])
    assert registry.plugins["dynalign-hooktest"].status == "ok", registry.plugins["dynalign-hooktest"].status
    return registry


def test_every_hook_is_documented_and_tested():
    readme = README.read_text()
    tests = Path(__file__).read_text()
    for name in HOOK_NAMES:
        heading = re.search(rf"^### {name}\(register\)\n(.*?)(?=^### |^## |\Z)", readme, re.S | re.M)
        assert heading, f"README.md lacks a '### {name}(register)' section"
        assert "```python" in heading.group(1), f"the README section of {name} has no example"
        assert f"def test_hook_{name}(" in tests, f"{name} has no test_hook_{name}"


def test_hook_register_values(ca_value):
    spec = ValueSpec.model_validate({**ca_value.model_dump(), "name": "kindness", "aliases": ("kind",)})
    registry = _registry(register_values=lambda register: register(spec))
    assert registry.get("value", "kind").obj is spec


def test_hook_register_models():
    registry = _registry(register_models=lambda register: register(ScriptedChatModel, aliases=("script",)))
    assert registry.get("model", "script").obj is ScriptedChatModel


class OnePrompt(PromptGenerator):
    """Always the same prompt."""

    name = "one-prompt"

    def generate(self, value):
        return PromptSet(train=[{"id": "1", "prompt": "Hello"}])


def test_hook_register_prompt_generators():
    registry = _registry(register_prompt_generators=lambda register: register(OnePrompt))
    assert registry.get("prompt_generator", "one-prompt").obj().generate(None).train[0].prompt == "Hello"


class LengthRewarder(Rewarder):
    """Longer is better."""

    name = "length"

    def __call__(self, prompts, completions, **columns):
        return [float(len(c)) for c in completions]


def test_hook_register_rewarders():
    registry = _registry(register_rewarders=lambda register: register(LengthRewarder, aliases=("long",)))
    rewarder = registry.get("rewarder", "long").obj()
    assert rewarder([["p"]], ["abc"]) == [3.0] and rewarder.__name__ == "length"


class NoOpOptimizer(Optimizer):
    """Trains nothing."""

    name = "no-op"


def test_hook_register_optimizers():
    registry = _registry(register_optimizers=lambda register: register(NoOpOptimizer))
    assert registry.get("optimizer", "no-op").distribution == "dynalign-hooktest"


class Noting(Stage):
    """Writes a note into the run directory."""

    name = "note"


def test_hook_register_stages():
    registry = _registry(register_stages=lambda register: register(Noting))
    assert registry.get("stage", "note").obj is Noting


def test_hook_register_commands():
    group = typer.Typer()

    @group.command()
    def hello() -> None:
        typer.echo("hi")

    def standalone() -> None:
        """A single command."""

    registry = _registry(register_commands=lambda register: (register(group, name="greet"), register(standalone)))
    assert (group, "greet") in registry.commands and (standalone, None) in registry.commands
