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

    def add_all(self, entries: list[Entry]) -> None:
        """Add one plugin's components, all or none: a name or alias already taken is a
        PluginError naming both distributions, and nothing of this plugin is added."""
        taken = {kind: dict(table) for kind, table in self._by_alias.items()}
        owners = {kind: {n: e.distribution for n, e in table.items()} for kind, table in self._entries.items()}
        for entry in entries:
            for key in (entry.name, *entry.aliases):
                owner = taken[entry.kind].get(key)
                if owner is not None:
                    other = owners[entry.kind].get(owner, entry.distribution)
                    raise PluginError(
                        f"two plugins register the {entry.kind} {key!r}: {other} and {entry.distribution}; "
                        f"uninstall one or disable it with DYNALIGN_DISABLE_PLUGINS={entry.distribution}"
                    )
                taken[entry.kind][key] = entry.name
            owners[entry.kind][entry.name] = entry.distribution
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

        Unknown names raise UnknownComponentError listing what is installed; if the plugin
        that would provide it failed to load, its error is named instead.
        """
        if kind not in self._entries:
            raise ValueError(f"unknown component kind {kind!r}; kinds are {KINDS}")
        canonical = self._by_alias[kind].get(name)
        if canonical is not None:
            return self._entries[kind][canonical]
        broken = [p for p in self.plugins.values() if p.status != "ok" and name in p.name]
        if broken:
            raise PluginError(
                f"the {kind} {name!r} may come from plugin {broken[0].name}, which failed: {broken[0].status}"
            )
        label = kind.replace("_", " ")
        choices = ", ".join(self.names(kind)) or "(none installed)"
        hint = INSTALL_HINTS[kind].format(name=name)
        raise UnknownComponentError(
            f"unknown {label} {name!r}. Choose one of: {choices} (plugin may not be installed: try pip install {hint})"
        )
