"""The project's first-party import graph, read with `ast`: the architecture test's checker.

Packages are found by layout: the core in core/dynalign, built-in plugins in plugins/*, value
and example packages in values/*/src/* and examples/*/src/*. An arrow is any import of a
first-party module: module- or function-level, type-only, relative (`from . import x`), or
through `importlib.import_module` / `__import__` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Package:
    """One first-party import package: its name, kind (core, plugin, value, example), folder."""

    name: str
    kind: str
    folder: Path


Arrow = tuple[str, str]


def find_packages(root: Path) -> dict[str, Package]:
    """Every first-party package under `root`, by the layout of DESIGN.md section 3."""
    found = [Package("dynalign", "core", root / "core" / "dynalign")]
    for kind, pattern in (("plugin", "plugins/*"), ("value", "values/*/src/*"), ("example", "examples/*/src/*")):
        found += [Package(p.name, kind, p) for p in sorted(root.glob(pattern)) if (p / "__init__.py").exists()]
    return {p.name: p for p in found if p.folder.is_dir()}


def _module_name(package: Package, path: Path) -> str:
    parts = [package.name, *path.relative_to(package.folder).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _relative(package: str, level: int, name: str | None) -> str:
    """The absolute name of a relative import `level` dots up from `package`."""
    base = package.split(".")
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def _literal(node: ast.expr | None, package: str) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id == "__package__":
        return package
    return None


def _dynamic_import(call: ast.Call, package: str) -> str | None:
    """The module a literal `importlib.import_module(...)` or `__import__(...)` call names."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name not in ("import_module", "__import__") or not call.args:
        return None
    target = _literal(call.args[0], package)
    if target is None or name == "__import__" or not target.startswith("."):
        return target
    anchor = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "package"), None)
    anchor_name = _literal(anchor, package)
    if anchor_name is None:
        return None
    level = len(target) - len(target.lstrip("."))
    return _relative(anchor_name, level, target[level:] or None)


def imported_names(tree: ast.AST, package: str) -> Iterator[str]:
    """Dotted names a module imports; `from m import a` yields `m.a` (a module or a name in m).
    `package` is the package relative imports start from."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _relative(package, node.level, node.module) if node.level else node.module or ""
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and (target := _dynamic_import(node, package)):
            yield target


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest known module `name` starts with: `pkg.mod.Thing` is an arrow to pkg.mod."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if (candidate := ".".join(parts[:end])) in modules:
            return candidate
    return None


def import_graph(packages: dict[str, Package]) -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports."""
    files = {_module_name(p, f): f for p in packages.values() for f in p.folder.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {_resolve(t, set(files)) for t in imported_names(tree, package)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
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


def arrows_between_packages(packages: dict[str, Package], graph: dict[str, set[str]]) -> set[tuple[Arrow, str, str]]:
    """Every arrow that leaves its own package, with the kinds of both ends."""
    kind = {name: p.kind for name, p in packages.items()}
    return {
        ((a, b), kind[a.split(".")[0]], kind[b.split(".")[0]])
        for a, targets in graph.items()
        for b in targets
        if a.split(".")[0] != b.split(".")[0]
    }


def core_arrows_out(packages: dict[str, Package], graph: dict[str, set[str]]) -> set[Arrow]:
    """Arrows from the core to any other first-party package (plugins, values, examples)."""
    return {arrow for arrow, source, _ in arrows_between_packages(packages, graph) if source == "core"}


def plugin_arrows_out(packages: dict[str, Package], graph: dict[str, set[str]]) -> set[Arrow]:
    """Arrows from a plugin to anything first-party but the core and itself."""
    return {
        arrow
        for arrow, source, target in arrows_between_packages(packages, graph)
        if source == "plugin" and target != "core"
    }


PUBLIC = frozenset({"dynalign", "dynalign.api"})
"""What of the core a plugin, value or example package may import: `dynalign` (`hookimpl`) and
the public API, `dynalign.api`."""


def private_core_arrows(
    packages: dict[str, Package], graph: dict[str, set[str]], public: frozenset[str] = PUBLIC
) -> set[Arrow]:
    """Arrows from a plugin, value or example package into the core but not its public API."""
    return {
        arrow
        for arrow, source, target in arrows_between_packages(packages, graph)
        if source in ("plugin", "value", "example") and target == "core" and arrow[1] not in public
    }


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def outside_arrows_out(packages: dict[str, Package], graph: dict[str, set[str]]) -> set[Arrow]:
    """Arrows from a value or example package to anything first-party but the core and itself."""
    return {
        arrow
        for arrow, source, target in arrows_between_packages(packages, graph)
        if source in ("value", "example") and target != "core"
    }
