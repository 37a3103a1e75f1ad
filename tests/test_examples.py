"""The example third-party packages: pip-installed, discovered and selected by config alone."""

from __future__ import annotations

import json
import sys

from conftest import ROOT, dynalign_with

from dynalign.testing import check_component, check_rewarder, check_value_spec
from dynalign.values import load_value_file


def test_example_packages_are_discovered_after_pip_install(examples_site):
    result = dynalign_with(examples_site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["dynalign-value-hhh"]["components"] == [{"kind": "value", "name": "hhh"}]
    assert plugins["dynalign-rewarder-rules"]["components"] == [{"kind": "rewarder", "name": "word-rules"}]
    assert all(p["status"] == "ok" for p in plugins.values())


def test_config_selects_them_with_no_core_change(examples_site):
    result = dynalign_with(examples_site, "config", "check", ROOT / "examples" / "configs" / "rules.toml")
    assert result.returncode == 0, result.stderr
    assert "value=hhh" in result.stdout and "word-rules" in result.stdout
    shown = dynalign_with(examples_site, "values", "show", "helpful-honest-harmless", "--json")
    assert [p["name"] for p in json.loads(shown.stdout)["pillars"]] == ["Helpful", "Honest", "Harmless"]


def test_not_installed_means_a_clear_hint(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('value = "hhh"\n')
    result = dynalign_with(tmp_path, "config", "check", config)
    assert result.returncode != 0
    assert "pip install dynalign-value-hhh" in result.stderr


def test_example_value_and_rewarder_meet_the_contracts(examples_site, monkeypatch):
    monkeypatch.syspath_prepend(str(examples_site))
    spec = load_value_file(examples_site / "dynalign_value_hhh" / "hhh.toml")
    check_value_spec(spec)
    assert (spec.score_min, spec.score_max) == (1, 5)
    from dynalign_rewarder_rules.rewarder import WordRulesOptions, WordRulesRewarder

    check_component(WordRulesRewarder)
    rewarder = WordRulesRewarder(WordRulesOptions(keywords=["safe"], word_pattern="[a-z]+"))
    scores = check_rewarder(rewarder, [["p"], ["p"]], ["it is safe", "IT IS 42"])
    assert scores == [2.0, 0.0]
    sys.modules.pop("dynalign_rewarder_rules.rewarder", None)
