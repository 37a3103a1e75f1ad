"""Optional dependencies: import them through `require`, so that a missing one is one line
naming the extra that installs it, not a traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

from dynalign.errors import DynalignError


class MissingExtraError(DynalignError):
    """An optional dependency is not installed; the message names the pip extra."""


def require(module: str, extra: str, distribution: str = "dynalign") -> ModuleType:
    """Import `module` (e.g. "rouge_score.rouge_scorer"), which `pip install 'DIST[EXTRA]'`
    provides; if it (or one of its own imports) is missing, raise MissingExtraError."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or module).split(".")[0]
        needed = module.split(".")[0]
        via = "" if missing == needed else f" (needed by {needed})"
        raise MissingExtraError(
            f"the optional package {missing!r}{via} is not installed: pip install '{distribution}[{extra}]'"
        ) from exc
