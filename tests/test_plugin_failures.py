"""Plugin load failures and duplicate names reach the commands people run (real broken
distributions: a `.dist-info` folder and a module on sys.path)."""

from __future__ import annotations

import pytest
from conftest import write_config

NO_PILLARS = """
name = "kindness"
title = "Kindness"
definition = "Be kind."
system_prompt = "Be kind."
[[rubric]]
score = 0
meaning = "unkind"
[[rubric]]
score = 1
meaning = "kind"
"""

VALUE_FROM_FILE = """
from pathlib import Path
from dynalign import hookimpl
from dynalign.values import load_value_file

@hookimpl
def register_values(register):
    register(load_value_file(Path(__file__).parent / "kindness.toml"))
"""

COPYCAT = """
from dynalign import hookimpl
from dynalign_value_ca import collective_agency

@hookimpl
def register_values(register):
    register(collective_agency())
"""


def _one_line_error(result) -> str:
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("command", [("values", "show", "kindness"), ("config", "check"), ("run",)])
def test_broken_import_is_named_by_every_command(fake_dist, run_cli, tmp_path, command):
    root = fake_dist("dynalign-value-kindness", "kindness_plugin", "import os\nraise RuntimeError('boom at import')\n")
    if command[0] != "values":
        command = (*command, write_config(tmp_path / "c.toml", 'value = "kindness"\n'))
    stderr = _one_line_error(run_cli(*command))
    assert "plugin dynalign-value-kindness failed to load" in stderr
    assert "RuntimeError: boom at import" in stderr and f"{root / 'kindness_plugin.py'}:2" in stderr
    assert "pip install" not in stderr  # not the misleading "may not be installed" hint


def test_invalid_value_file_names_the_file_and_field(fake_dist, run_cli):
    root = fake_dist("dynalign-value-kindness", "kindness_plugin", VALUE_FROM_FILE)
    (root / "kindness.toml").write_text(NO_PILLARS)
    stderr = _one_line_error(run_cli("values", "show", "kindness"))
    assert "dynalign-value-kindness failed to load" in stderr
    assert f"{root / 'kindness.toml'}: pillars: Field required" in stderr


def test_plugins_command_exits_non_zero_when_a_plugin_failed(fake_dist, run_cli):
    assert run_cli("plugins").exit_code == 0
    fake_dist("dynalign-broken", "broken_plugin", "raise ImportError('missing dep')")
    result = run_cli("plugins", "--json")
    assert result.exit_code == 1 and "dynalign-broken" in result.stderr
    status = {p["name"]: p["status"] for p in result.json()}["dynalign-broken"]
    assert "ImportError: missing dep" in status


@pytest.mark.parametrize("command", [("values", "show", "ca"), ("values", "show", "collective-agency"), ("config",)])
def test_a_duplicated_name_fails_naming_both_distributions(fake_dist, run_cli, tmp_path, command):
    fake_dist("dynalign-value-copycat", "copycat", COPYCAT)
    if command == ("config",):
        command = ("config", "check", write_config(tmp_path / "c.toml", 'value = "ca"\n'))
    stderr = _one_line_error(run_cli(*command))
    assert "two plugins register the value" in stderr
    assert "dynalign-value-ca" in stderr and "dynalign-value-copycat" in stderr
    assert "DYNALIGN_DISABLE_PLUGINS=" in stderr


def test_disabling_one_duplicate_is_the_way_out(fake_dist, run_cli, monkeypatch):
    fake_dist("dynalign-value-copycat", "copycat", COPYCAT)
    monkeypatch.setenv("DYNALIGN_DISABLE_PLUGINS", "dynalign-value-copycat")
    result = run_cli("values", "show", "ca")
    assert result.exit_code == 0 and "Collective Agency" in result.stdout


FORGOT_HOOKIMPL = """
from pathlib import Path
from dynalign.values import load_value_file

def register_values(register):  # no @hookimpl: pluggy never calls it
    register(load_value_file(Path(__file__).parent / "kindness.toml"))
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (FORGOT_HOOKIMPL, "no function in it is marked @hookimpl"),
        (
            "from dynalign import hookimpl\n@hookimpl\ndef register_values(register):\n    pass\n",
            "never called register",
        ),
    ],
)
def test_a_plugin_that_registers_nothing_fails_and_says_why(fake_dist, run_cli, source, expected):
    module = f"silent_plugin_{len(expected)}"  # a fresh module name: sys.modules outlives a test
    fake_dist("dynalign-value-kindness", module, source)
    listed = run_cli("plugins")
    assert listed.exit_code == 1
    line = next(line for line in listed.stdout.splitlines() if line.startswith("dynalign-value-kindness"))
    assert f"entry point `{module} = {module}` registered nothing" in line and expected in line
    stderr = _one_line_error(run_cli("values", "show", "kindness"))
    assert "registered nothing" in stderr and "pip install" not in stderr


def test_an_entry_point_naming_a_missing_module_names_the_entry_point(fake_dist, run_cli):
    root = fake_dist("dynalign-value-kindness", "typo_plugin", "")
    info = root / "dynalign_value_kindness-0.1.dist-info" / "entry_points.txt"
    info.write_text("[dynalign]\nkindness = kindness_plugn\n")  # a typo in pyproject.toml
    stderr = _one_line_error(run_cli("values", "show", "kindness"))
    assert "entry point `kindness = kindness_plugn` of dynalign-value-kindness" in stderr
    assert "no module named 'kindness_plugn'; fix the entry point" in stderr and "importlib" not in stderr


def test_a_missing_dependency_points_at_the_plugins_own_line(fake_dist, run_cli):
    root = fake_dist("dynalign-value-kindness", "needy_plugin", "import os\nimport surely_not_installed\n")
    stderr = _one_line_error(run_cli("values", "show", "kindness"))
    assert "No module named 'surely_not_installed'" in stderr and f"{root / 'needy_plugin.py'}:2" in stderr
    assert "importlib" not in stderr
