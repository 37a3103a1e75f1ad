"""The registry: every installed component by kind and name, plus plugins that failed.

Filled by `dynalign.plugins.load_registry`; lookups by name fail with the list of what is
installed and a hint at the package that may be missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynalign.errors import PluginError, UnknownComponentError

KINDS: tuple[str, ...] = ("value", "model", "prompt_generator", "rewarder", "optimizer", "stage")
INSTALL_HINTS: dict[str, str] = {
    "value": "dynalign-value-{name}",
    "model": "dynalign-{name}",
    "prompt_generator": "dynalign-{name}",
    "rewarder": "dynalign-{name}",
    "optimizer": "dynalign-{name}",
    "stage": "dynalign-{name}",
}


@dataclass(frozen=True)
class Entry:
    """One registered component: the class (or, for values, the ValueSpec) and its origin."""

    kind: str
    name: str
    obj: Any
    distribution: str
    aliases: tuple[str, ...] = ()


@dataclass
class PluginInfo:
    """An installed plugin distribution: its status is "ok" or the error it raised."""

    name: str
    version: str
    status: str = "ok"
    components: list[dict[str, str]] = field(default_factory=list)


class Registry:
    """Components by kind and name (aliases included), plus what each plugin provided."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._by_alias: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        self.commands: list[tuple[Any, str | None]] = []
        self.conflicts: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}  # name -> error

    def failed(self) -> list[PluginInfo]:
        """Plugin distributions that failed to load, by name."""
        return sorted((p for p in self.plugins.values() if p.status != "ok"), key=lambda p: p.name)

    def add_all(self, entries: list[Entry]) -> None:
        """Add one plugin's components, all or none: a name or alias already taken is a
        PluginError naming both distributions, nothing of this plugin is added, and looking
        that name up fails from then on (it is ambiguous)."""
        taken = {kind: dict(table) for kind, table in self._by_alias.items()}
        owners = {kind: {n: e.distribution for n, e in table.items()} for kind, table in self._entries.items()}
        clashes: list[str] = []
        for entry in entries:
            for key in (entry.name, *entry.aliases):
                owner = taken[entry.kind].get(key)
                if owner is not None:
                    other = owners[entry.kind].get(owner, entry.distribution)
                    message = (
                        f"two plugins register the {entry.kind.replace('_', ' ')} {key!r}: {other} and "
                        f"{entry.distribution}; uninstall one or disable it, "
                        f"e.g. DYNALIGN_DISABLE_PLUGINS={entry.distribution}"
                    )
                    if other != entry.distribution:
                        self.conflicts[entry.kind][key] = message
                    clashes.append(message)
                taken[entry.kind][key] = entry.name
            owners[entry.kind].setdefault(entry.name, entry.distribution)
        if clashes:
            raise PluginError(clashes[0])
        for entry in entries:
            self._add(entry)

    def _add(self, entry: Entry) -> None:
        """Add one component (use `add_all` for a plugin's set, which checks names first)."""
        table = self._by_alias[entry.kind]
        self._entries[entry.kind][entry.name] = entry
        for key in (entry.name, *entry.aliases):
            table[key] = entry.name

    def entries(self, kind: str) -> list[Entry]:
        """All components of a kind, sorted by name."""
        return sorted(self._entries[kind].values(), key=lambda e: e.name)

    def names(self, kind: str) -> list[str]:
        """Registered names of a kind (without aliases), sorted."""
        return sorted(self._entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        """The component called `name` (or an alias of it).

        A name two distributions register raises PluginError naming both. Unknown names raise
        UnknownComponentError listing what is installed, or, when some plugin failed to load,
        PluginError naming each failed distribution with its error.
        """
        if kind not in self._entries:
            raise ValueError(f"unknown component kind {kind!r}; kinds are {KINDS}")
        if name in self.conflicts[kind]:
            raise PluginError(self.conflicts[kind][name])
        canonical = self._by_alias[kind].get(name)
        if canonical is not None:
            return self._entries[kind][canonical]
        label = kind.replace("_", " ")
        choices = ", ".join(self.names(kind)) or "(none installed)"
        failed = self.failed()
        if failed:
            causes = "; ".join(f"plugin {p.name} failed to load: {p.status}" for p in failed)
            raise PluginError(f"unknown {label} {name!r} (installed: {choices}); {causes}")
        hint = INSTALL_HINTS[kind].format(name=name)
        raise UnknownComponentError(
            f"unknown {label} {name!r}. Choose one of: {choices} (plugin may not be installed: try pip install {hint})"
        )
