"""Plugin discovery: entry points, conflicts, broken plugins, wrong types, switches."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dynalign.errors import PluginError, UnknownComponentError
from dynalign.plugins import load_registry
from dynalign.testing import ScriptedChatModel, scripted_plugin


def test_builtins_and_ca_are_discovered(dynalign_registry):
    assert {"hf"} <= set(dynalign_registry.names("model"))
    assert "self-reward" in dynalign_registry.names("rewarder")
    assert "grpo" in dynalign_registry.names("optimizer")
    entry = dynalign_registry.get("value", "ca")
    assert entry.name == "collective-agency" and entry.distribution == "dynalign-value-ca"


def test_unknown_name_lists_choices_and_install_hint(dynalign_registry):
    with pytest.raises(UnknownComponentError) as err:
        dynalign_registry.get("value", "kindness")
    message = str(err.value)
    assert "Choose one of: " in message and "collective-agency" in message
    assert "pip install dynalign-value-kindness" in message


def test_plugin_raising_at_import_is_recorded_not_fatal(fake_dist):
    fake_dist("dynalign-broken", "broken_plugin", "raise RuntimeError('boom at import')")
    registry = load_registry()
    assert "boom at import" in registry.plugins["dynalign-broken"].status
    assert registry.get("value", "ca").name == "collective-agency"  # others still load


def test_config_needing_a_broken_plugin_fails_naming_its_error(fake_dist):
    fake_dist("dynalign-value-broken", "broken_value", "raise ImportError('missing dep')")
    with pytest.raises(PluginError, match="missing dep"):
        load_registry().get("value", "broken")


def test_two_plugins_claiming_one_name_is_an_error_naming_both(fake_dist):
    fake_dist(
        "dynalign-value-copycat",
        "copycat",
        """
        from dynalign import hookimpl
        from dynalign_value_ca import collective_agency

        @hookimpl
        def register_values(register):
            register(collective_agency())
        """,
    )
    registry = load_registry()
    statuses = {name: info.status for name, info in registry.plugins.items()}
    conflict = [s for s in statuses.values() if "two plugins register" in s]
    assert conflict and "dynalign-value-ca" in conflict[0] and "dynalign-value-copycat" in conflict[0]


def test_a_conflict_drops_all_of_that_plugins_components(fake_dist):
    fake_dist(
        "dynalign-value-twins",
        "twins",
        """
        from dynalign import hookimpl
        from dynalign_value_ca import collective_agency

        @hookimpl
        def register_values(register):
            spec = collective_agency()
            register(spec.model_copy(update={"name": "fresh-value", "aliases": ()}))
            register(spec)  # clashes with dynalign-value-ca
        """,
    )
    registry = load_registry()
    failed = [
        p for p in ("dynalign-value-twins", "dynalign-value-ca") if "two plugins register" in registry.plugins[p].status
    ]
    assert len(failed) == 1  # whichever loaded second
    if failed == ["dynalign-value-twins"]:
        assert "fresh-value" not in registry.names("value")  # its other, unclashing value is dropped too
    assert registry.plugins[failed[0]].components == []
    with pytest.raises(PluginError, match="two plugins register the value 'collective-agency'"):
        registry.get("value", "collective-agency")  # ambiguous, whichever loaded first


def test_plugin_registering_the_wrong_type_is_rejected(fake_dist):
    fake_dist(
        "dynalign-wrongtype",
        "wrongtype",
        """
        from dynalign import hookimpl

        @hookimpl
        def register_rewarders(register):
            register(lambda prompts, completions, **kw: [1.0] * len(completions))
        """,
    )
    status = load_registry().plugins["dynalign-wrongtype"].status
    assert "must be a subclass of Rewarder" in status


def test_partial_registrations_of_a_failing_plugin_are_dropped(fake_dist):
    fake_dist(
        "dynalign-halfway",
        "halfway",
        """
        from dynalign import hookimpl
        from dynalign.testing import ScriptedChatModel

        @hookimpl
        def register_models(register):
            register(ScriptedChatModel)

        @hookimpl
        def register_rewarders(register):
            raise RuntimeError("second hook fails")
        """,
    )
    registry = load_registry()
    assert "second hook fails" in registry.plugins["dynalign-halfway"].status
    assert "scripted" not in registry.names("model")


def test_disable_and_load_switches(monkeypatch):
    monkeypatch.setenv("DYNALIGN_DISABLE_PLUGINS", "dynalign-value-ca")
    assert "collective-agency" not in load_registry().names("value")
    monkeypatch.delenv("DYNALIGN_DISABLE_PLUGINS")
    monkeypatch.setenv("DYNALIGN_LOAD_PLUGINS", "dynalign-value-ca")
    registry = load_registry()
    assert registry.names("value") == ["collective-agency"] and registry.names("model") == []


def test_extra_in_memory_plugin_registers_components():
    registry = load_registry(extra_plugins=[scripted_plugin(ScriptedChatModel)])
    assert registry.get("model", "scripted").obj is ScriptedChatModel


def test_plugins_json_lists_ca_without_importing_torch():
    code = (
        "import sys, json; from dynalign.cli import main; main(['plugins', '--json']);"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import json

    plugins = {p["name"]: p for p in json.loads(done.stdout)}
    assert {"kind": "value", "name": "collective-agency"} in plugins["dynalign-value-ca"]["components"]
    assert plugins["dynalign-value-ca"]["status"] == "ok"
    assert {"kind": "optimizer", "name": "grpo"} in plugins["dynalign"]["components"]
    assert "NO-TORCH" in done.stderr
