"""IFEval with lm-eval's own checkers (strict and loose, prompt and instruction level).

Two checkers need NLTK's punkt data, which cannot be downloaded offline: when it is not
installed, a regex sentence splitter (lm-eval's own `split_into_sentences`) and a regex word
tokenizer stand in, and results say so (`tokenizers`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from dynalign.api import numbered_jsonl, require
from dynalign_eval.options import EvalError

REQUIRED = ("key", "prompt", "instruction_id_list", "kwargs")
HUB_SOURCE = "hub:google/IFEval"
PATH_VARIABLE = "DYNALIGN_IFEVAL_PATH"
_WORD = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]")
_tokenizers: str | None = None


NO_SOURCE = (
    f"no local IFEval data; set ifeval_path or {PATH_VARIABLE} to IFEval's input_data.jsonl "
    f"(or ifeval_path = {HUB_SOURCE!r} to download it)"
)


class IFEvalUnavailable(EvalError):
    """IFEval cannot be had: no local copy named, or the hub dataset asked for cannot be loaded."""


def default_source(path: str | None) -> str:
    """Where IFEval comes from: `path`, else $DYNALIGN_IFEVAL_PATH. Nothing is downloaded unless
    asked for by name (`hub:google/IFEval`); with neither, IFEvalUnavailable says how to set one."""
    source = path or os.environ.get(PATH_VARIABLE)
    if not source:
        raise IFEvalUnavailable(NO_SOURCE)
    return source


def load_rows(source: str, limit: int | None = None) -> list[dict[str, Any]]:
    """IFEval rows from a JSONL file (errors name the line) or `hub:<dataset>` (online only;
    IFEvalUnavailable when it cannot be had)."""
    if source.startswith("hub:"):
        return _from_hub(source[4:], limit)
    path = Path(source).expanduser()
    if not path.is_file():
        raise EvalError(f"IFEval file {path} does not exist; set ifeval_path to IFEval's input_data.jsonl")
    rows = []
    for number, row in numbered_jsonl(path, EvalError, "; fix or remove the line"):
        _check_row(row, f"{path}:{number}")
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise EvalError(f"IFEval file {path} holds no prompts")
    return rows


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise EvalError(f"{where}: an IFEval row must be a JSON object with {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise EvalError(f"{where}: missing field {missing[0]!r} (IFEval rows need {', '.join(REQUIRED)})")
    ids, kwargs = row["instruction_id_list"], row["kwargs"]
    if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
        raise EvalError(f"{where}: instruction_id_list and kwargs must be lists of equal length")
    registry = _registry()
    unknown = [i for i in ids if i not in registry]
    if unknown:
        raise EvalError(f"{where}: unknown IFEval instruction {unknown[0]!r}")


def _from_hub(name: str, limit: int | None) -> list[dict[str, Any]]:
    try:
        from datasets import load_dataset

        data = load_dataset(name, split="train")
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise IFEvalUnavailable(
            f"cannot load the dataset {name} from the Hugging Face hub ({reason}); "
            f"set ifeval_path or {PATH_VARIABLE} to a local input_data.jsonl"
        ) from exc
    rows = [dict(r) for r in data]
    return rows[:limit] if limit is not None else rows


def _patch_nltk() -> str:
    """Import lm-eval's IFEval modules without letting them download NLTK data."""
    global _tokenizers
    if _tokenizers is not None:
        return _tokenizers
    nltk = require("nltk", "eval")

    try:
        nltk.data.find("tokenizers/punkt_tab")
        have_punkt = True
    except LookupError:
        have_punkt = False
    real_download = nltk.download
    nltk.download = lambda *args, **kwargs: False  # the import-time download would need the network
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Downloaded punkt_tab" regardless
            instructions_util = require("lm_eval.tasks.ifeval.instructions_util", "eval")
    finally:
        nltk.download = real_download
    if have_punkt:
        _tokenizers = "nltk punkt"
        return _tokenizers

    class _Sentences:
        def tokenize(self, text: str) -> list[str]:
            return instructions_util.split_into_sentences(text)

    class _NltkWithoutData:
        """nltk, except for the two data-hungry tokenizers the IFEval checkers call."""

        def __getattr__(self, name: str) -> Any:
            return getattr(nltk, name)

        @staticmethod
        def word_tokenize(text: str) -> list[str]:
            return _WORD.findall(text)

    instructions_util._get_sentence_tokenizer = lambda: _Sentences()
    instructions_util.nltk = _NltkWithoutData()
    _tokenizers = "regex substitutes for nltk punkt (sentence: lm-eval split_into_sentences; words: regex)"
    return _tokenizers


def _registry() -> dict[str, Any]:
    _patch_nltk()
    return require("lm_eval.tasks.ifeval.instructions_registry", "eval").INSTRUCTION_DICT


def score(rows: list[dict[str, Any]], responses: list[str], resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Prompt- and instruction-level strict and loose accuracy of `responses` to `rows`."""
    _registry()
    langdetect = require("langdetect", "eval")
    process_results = require("lm_eval.tasks.ifeval.utils", "eval").process_results

    langdetect.DetectorFactory.seed = 0  # language checks are otherwise random
    from dynalign_eval.stats import bootstrap_ci

    per_prompt = [process_results(row, [response]) for row, response in zip(rows, responses)]
    out: dict[str, Any] = {"n_prompts": len(per_prompt), "tokenizers": _tokenizers}
    for kind in ("strict", "loose"):
        prompt_level = [float(r[f"prompt_level_{kind}_acc"]) for r in per_prompt]
        inst_level = [float(x) for r in per_prompt for x in r[f"inst_level_{kind}_acc"]]
        out[f"prompt_level_{kind}_acc"] = float(np.mean(prompt_level))
        out[f"prompt_level_{kind}_ci95"] = list(bootstrap_ci(prompt_level, resamples, seed))
        out[f"inst_level_{kind}_acc"] = float(np.mean(inst_level))
    out["n_instructions"] = sum(len(r["inst_level_strict_acc"]) for r in per_prompt)
    out["per_prompt"] = [
        {"key": row["key"], "strict": bool(r["prompt_level_strict_acc"]), "loose": bool(r["prompt_level_loose_acc"])}
        for row, r in zip(rows, per_prompt)
    ]
    return out
