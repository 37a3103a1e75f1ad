"""Imports run one way: the core at the bottom, plugins on top; no import cycles anywhere
(type-only and function-level imports count: they are arrows all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"dynalign": ROOT / "core" / "dynalign"} | {
    p.name: p for p in sorted((ROOT / "plugins").iterdir()) if (p / "__init__.py").exists()
}
# Plugins that reach into another plugin instead of going through a core interface; being
# reworked (issue 11, architecture). Remove an entry when its arrow is gone.
KNOWN_CROSS_PLUGIN: set[tuple[str, str]] = set()


def _module_name(package: str, path: Path) -> str:
    parts = [package, *path.relative_to(PACKAGES[package]).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports."""
    modules = {_module_name(pkg, f): f for pkg, folder in PACKAGES.items() for f in folder.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import mod` is an arrow to pkg.mod; `from mod import name` one to mod
                targets |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                }
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _core(module: str) -> bool:
    return module.split(".")[0] == "dynalign"


def test_the_core_imports_no_plugin():
    arrows = [(a, b) for a, targets in import_graph().items() for b in targets]
    assert [(a, b) for a, b in arrows if _core(a) and not _core(b)] == []


def test_no_import_cycles():
    assert _cycles(import_graph()) == []


def test_plugins_use_each_other_only_through_the_core():
    arrows = {
        (a, b)
        for a, targets in import_graph().items()
        for b in targets
        if not _core(a) and not _core(b) and a.split(".")[0] != b.split(".")[0]
    }
    assert arrows - KNOWN_CROSS_PLUGIN == set()


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
