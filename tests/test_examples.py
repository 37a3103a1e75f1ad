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
    assert plugins["dynalign-word-rules"]["components"] == [{"kind": "rewarder", "name": "word-rules"}]
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
    from dynalign_word_rules.rewarder import WordRulesOptions, WordRulesRewarder

    check_component(WordRulesRewarder)
    rewarder = WordRulesRewarder(WordRulesOptions(keywords=["safe"], word_pattern="[a-z]+"))
    prompts = [[{"role": "user", "content": "p"}]] * 2
    answers = [[{"role": "assistant", "content": text}] for text in ("it is safe", "IT IS 42")]
    scores = check_rewarder(rewarder, prompts, answers)
    assert scores == [2.0, 0.0]
    sys.modules.pop("dynalign_word_rules.rewarder", None)


def test_a_real_wheel_of_the_example_value_carries_its_toml_and_loads(tmp_path):
    """Built offline with the setuptools already installed; installed without the source tree."""
    import os
    import shutil
    import subprocess
    import zipfile

    source = shutil.copytree(ROOT / "examples" / "value-hhh", tmp_path / "value-hhh")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*build, "-w", tmp_path / "dist", source], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("dynalign_value_hhh-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "dynalign_value_hhh/hhh.toml" in names
        archive.extractall(tmp_path / "site")  # what pip install does with a pure-Python wheel
    shutil.rmtree(source)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if "value-hhh" not in p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), *paths])}
    shown = subprocess.run(
        [sys.executable, "-m", "dynalign.cli", "values", "show", "hhh", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert [p["name"] for p in json.loads(shown.stdout)["pillars"]] == ["Helpful", "Honest", "Harmless"]


def _readme_files(*sections: str) -> dict[str, str]:
    """Code blocks of README sections whose first line names their file (`# path ...`)."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    files = {}
    for section in sections:
        body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        for block in re.findall(r"```(?:toml|python)\n(.*?)```", body, re.S):
            first = block.splitlines()[0]
            if first.startswith("# ") and "." in first.split()[1]:
                files[first.split()[1]] = block
    return files


def test_the_readme_rewarder_package_builds_installs_and_passes_its_tests(tmp_path):
    """A newcomer's package from the README alone: pyproject, module and tests, as written."""
    import os
    import subprocess

    files = _readme_files("Write your own rewarder", "Test your plugin")
    assert set(files) == {"pyproject.toml", "src/dynalign_brevity/__init__.py", "tests/test_brevity.py"}
    package = tmp_path / "dynalign-brevity"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*install, "--target", tmp_path / "site", package], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "dynalign.testing", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed" in done.stdout


def test_the_readme_value_package_builds_into_a_wheel_that_loads(tmp_path):
    """The value package of the README, as written: a real wheel, installed, shown by the CLI."""
    import os
    import subprocess
    import zipfile

    from dynalign.values import load_value_file

    files = _readme_files("Write your own value")
    assert set(files) == {
        "pyproject.toml",
        "src/dynalign_value_kindness/__init__.py",
        "src/dynalign_value_kindness/kindness.toml",
    }
    package = tmp_path / "dynalign-value-kindness"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    spec = load_value_file(package / "src/dynalign_value_kindness/kindness.toml")
    check_value_spec(spec)
    assert spec.held_out and spec.prompts  # a complete value: held-out pairs and bundled prompts
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*build, "-w", tmp_path / "dist", package], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("dynalign_value_kindness-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
    result = dynalign_with(tmp_path / "site", "values", "show", "kind", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p["name"] for p in json.loads(result.stdout)["pillars"]] == ["Warmth", "Help"]
    assert os.path.exists(tmp_path / "site" / "dynalign_value_kindness" / "kindness.toml")
