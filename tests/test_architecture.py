"""Imports run one way: the core at the bottom, plugins on top, value and example packages
beside them on the core's public API alone (`dynalign`, `dynalign.api`); the plugin contract
behind that API holds no config machinery; no import cycles anywhere (relative, type-only,
function-level and `importlib` imports count: they are arrows all the same). Each rule is also
shown to fail on a small fake tree, so a checker that stopped seeing an arrow would fail here."""

from __future__ import annotations

from pathlib import Path

import pytest
from importgraph import (
    core_arrows_out,
    cycles,
    find_packages,
    import_graph,
    outside_arrows_out,
    plugin_arrows_out,
    private_core_arrows,
    reachable,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project():
    packages = find_packages(ROOT)
    return packages, import_graph(packages)


def test_the_checker_sees_every_kind_of_package(project):
    packages, graph = project
    kinds = {p.kind for p in packages.values()}
    assert kinds == {"core", "plugin", "value", "example"}
    assert "dynalign.api" in graph["dynalign_value_ca"]  # values/ca/src is read, not skipped


def test_the_core_imports_no_plugin(project):
    assert core_arrows_out(*project) == set()


def test_plugins_use_each_other_only_through_the_core(project):
    assert plugin_arrows_out(*project) == set()


def test_value_and_example_packages_import_only_the_core_and_themselves(project):
    assert outside_arrows_out(*project) == set()


def test_plugins_values_and_examples_import_only_the_public_api(project):
    assert private_core_arrows(*project) == set()


MACHINERY = {"dynalign.config", "dynalign.plugins", "dynalign.loop", "dynalign.cli", "dynalign.scoring"}


def test_the_plugin_contract_holds_no_config_machinery(project):
    """What the API hands on (the kinds, judging, files...) reaches no config file handling,
    plugin discovery, loop or CLI; only `open_stack`, the way a command opens a run, does."""
    _, graph = project
    contract = graph["dynalign.api"] - {"dynalign.opening"}
    assert {m: reachable(graph, m) & MACHINERY for m in contract if reachable(graph, m) & MACHINERY} == {}
    assert "dynalign.config" in reachable(graph, "dynalign.opening")  # the checker sees the way there


def test_no_import_cycles(project):
    assert cycles(project[1]) == []


def _tree(root: Path, files: dict[str, str]) -> tuple[dict, dict]:
    """A fake project: a core, two plugins, a value and an example package, plus `files`."""
    layout = {
        "core/dynalign/__init__.py": "",
        "core/dynalign/api.py": "",
        "core/dynalign/config.py": "",
        "plugins/dynalign_a/__init__.py": "from dynalign import api, hookimpl\n",
        "plugins/dynalign_a/mod.py": "",
        "plugins/dynalign_b/__init__.py": "",
        "values/v/src/dynalign_value_v/__init__.py": "import dynalign.api\nfrom dynalign_value_v import data\n",
        "values/v/src/dynalign_value_v/data.py": "",
        "examples/e/src/dynalign_e/__init__.py": "from dynalign import api\n",
    }
    for name, text in {**layout, **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    packages = find_packages(root)
    return packages, import_graph(packages)


def test_a_clean_fake_tree_passes_every_rule(tmp_path):
    packages, graph = _tree(tmp_path, {})
    assert len(packages) == 5
    assert core_arrows_out(packages, graph) == plugin_arrows_out(packages, graph) == set()
    assert outside_arrows_out(packages, graph) == set() and cycles(graph) == []
    assert private_core_arrows(packages, graph) == set()


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("plugins/dynalign_a/mod.py", "from dynalign.config import load_config\n"),
        ("plugins/dynalign_a/mod.py", "from dynalign import config\n"),
        ("plugins/dynalign_a/mod.py", "def later():\n    import dynalign.config\n"),
        ("plugins/dynalign_a/mod.py", "import importlib\nimportlib.import_module('dynalign.config')\n"),
        ("values/v/src/dynalign_value_v/data.py", "from dynalign.config import x\n"),
        (
            "examples/e/src/dynalign_e/__init__.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dynalign.config\n",
        ),
    ],
)
def test_the_checker_fails_a_plugin_value_or_example_that_imports_past_the_api(tmp_path, path, source):
    packages, graph = _tree(tmp_path, {path: source})
    assert {b for _, b in private_core_arrows(packages, graph)} == {"dynalign.config"}


@pytest.mark.parametrize(
    "source",
    [
        "import dynalign_a\n",
        "from dynalign_a.mod import thing\n",
        "def later():\n    from dynalign_a import mod\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dynalign_a.mod\n",
        "import importlib\nplugin = importlib.import_module('dynalign_a.mod')\n",
        "from importlib import import_module\nplugin = import_module('.mod', 'dynalign_a')\n",
        "plugin = __import__('dynalign_a')\n",
        "import dynalign_value_v\n",
    ],
)
def test_the_checker_fails_a_core_that_imports_a_plugin(tmp_path, source):
    packages, graph = _tree(tmp_path, {"core/dynalign/loader.py": source})
    assert {a for a, _ in core_arrows_out(packages, graph)} == {"dynalign.loader"}


@pytest.mark.parametrize(
    "source",
    [
        "from dynalign_b import helper\n",
        "import importlib\nother = importlib.import_module('dynalign_b')\n",
        "import dynalign_value_v.data\n",
    ],
)
def test_the_checker_fails_a_plugin_that_imports_another(tmp_path, source):
    packages, graph = _tree(tmp_path, {"plugins/dynalign_a/reach.py": source})
    assert {a for a, _ in plugin_arrows_out(packages, graph)} == {"dynalign_a.reach"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("from .mod import y\n", "from . import x\n"),
        ("from dynalign_a.mod import y\n", "def later():\n    from .x import z\n"),
        ("import importlib\nimportlib.import_module('.mod', __package__)\n", "x = __import__('dynalign_a.x')\n"),
    ],
)
def test_the_checker_fails_a_cycle_inside_a_plugin(tmp_path, first, second):
    packages, graph = _tree(tmp_path, {"plugins/dynalign_a/x.py": first, "plugins/dynalign_a/mod.py": second})
    assert cycles(graph) == [["dynalign_a.mod", "dynalign_a.x"]]


def test_the_checker_resolves_relative_imports_from_a_subpackage(tmp_path):
    files = {
        "plugins/dynalign_a/sub/__init__.py": "",
        "plugins/dynalign_a/sub/deep.py": "from .. import x\n",
        "plugins/dynalign_a/x.py": "from .sub import deep\n",
    }
    packages, graph = _tree(tmp_path, files)
    assert cycles(graph) == [["dynalign_a.sub.deep", "dynalign_a.x"]]


def test_the_checker_fails_a_cycle_inside_the_core(tmp_path):
    files = {"core/dynalign/api.py": "from dynalign import loop\n", "core/dynalign/loop.py": "from .api import x\n"}
    packages, graph = _tree(tmp_path, files)
    assert cycles(graph) == [["dynalign.api", "dynalign.loop"]]


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("values/v/src/dynalign_value_v/data.py", "from dynalign_a import mod\n"),
        ("values/v/src/dynalign_value_v/data.py", "import importlib\nimportlib.import_module('dynalign_b')\n"),
        ("examples/e/src/dynalign_e/__init__.py", "from dynalign_value_v import data\n"),
        ("examples/e/src/dynalign_e/__init__.py", "def later():\n    import dynalign_a.mod\n"),
    ],
)
def test_the_checker_fails_a_value_or_example_that_imports_a_plugin(tmp_path, path, source):
    packages, graph = _tree(tmp_path, {path: source})
    source_module = path.split("/src/")[1].removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert {a for a, _ in outside_arrows_out(packages, graph)} == {source_module}


def test_a_plugin_author_gets_the_fixtures_with_two_flags(tmp_path):
    import subprocess
    import sys

    (tmp_path / "test_mine.py").write_text(
        "def test_fixtures(dynalign_registry, tiny_model_dir, run_cli):\n"
        "    assert 'hf' in dynalign_registry.names('model')\n"
        "    assert (tiny_model_dir / 'config.json').exists()\n"
        "    assert run_cli('plugins').exit_code == 0\n"
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "dynalign.testing", "-p", "dynalign_hf.testing"]
    done = subprocess.run([*command, "test_mine.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:]
