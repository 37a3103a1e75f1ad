"""IFEval: loading with line-numbered errors, lm-eval's checkers with data-free tokenizers."""

import json

import pytest
from conftest import IFEVAL_DATA

from dynalign_eval import ifeval
from dynalign_eval.options import EvalError

SHARED = IFEVAL_DATA
needs_data = pytest.mark.skipif(not SHARED.exists(), reason=f"IFEval data not found at {SHARED.resolve()}")


def _row(key, ids, kwargs, prompt="Write something."):
    return {"key": key, "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs}


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(EvalError, match="does not exist; set ifeval_path"):
        ifeval.load_rows(str(tmp_path / "nope.jsonl"))


def test_malformed_lines_name_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(_row(1, ["punctuation:no_comma"], [{}]))
    path.write_text(f"{good}\n\n{{not json\n")
    with pytest.raises(EvalError, match=r"bad.jsonl:3: not valid JSON"):
        ifeval.load_rows(str(path))
    path.write_text(good + "\n" + json.dumps({"key": 2, "prompt": "x", "kwargs": []}) + "\n")
    with pytest.raises(EvalError, match=r"bad.jsonl:2: missing field 'instruction_id_list'"):
        ifeval.load_rows(str(path))
    path.write_text(json.dumps(_row(3, ["made:up"], [{}])) + "\n")
    with pytest.raises(EvalError, match=r"bad.jsonl:1: unknown IFEval instruction 'made:up'"):
        ifeval.load_rows(str(path))


def test_checkers_strict_and_loose():
    rows = [
        _row(1, ["punctuation:no_comma"], [{}]),
        _row(2, ["length_constraints:number_sentences"], [{"relation": "less than", "num_sentences": 3}]),
        _row(3, ["change_case:capital_word_frequency"], [{"capital_relation": "at least", "capital_frequency": 2}]),
        _row(4, ["startend:quotation"], [{}]),
    ]
    good = ["No commas here at all.", "One sentence. Two sentences.", "THIS is VERY loud.", '"quoted"']
    bad = ["Well, a comma.", "One. Two. Three. Four. Five.", "quiet words only", "not quoted"]
    assert ifeval.score(rows, good, 200)["prompt_level_strict_acc"] == 1.0
    out = ifeval.score(rows, bad, 200)
    assert out["prompt_level_strict_acc"] == 0.0 and out["inst_level_loose_acc"] == 0.0
    assert out["n_instructions"] == 4
    # Loose accuracy forgives a chatty first line; strict does not.
    chatty = ifeval.score([rows[3]], ['Sure, here it is:\n"quoted"'], 200)
    assert chatty["prompt_level_strict_acc"] == 0.0 and chatty["prompt_level_loose_acc"] == 1.0
    assert "regex" in out["tokenizers"] or out["tokenizers"] == "nltk punkt"


@needs_data
def test_shared_ifeval_data_loads_with_limit():
    rows = ifeval.load_rows(str(SHARED), limit=25)
    assert len(rows) == 25
    out = ifeval.score(rows, [""] * 25, 200)
    assert out["prompt_level_strict_acc"] == 0.0  # empty answers follow nothing
    assert out["n_instructions"] == sum(len(r["instruction_id_list"]) for r in rows)


def test_source_is_the_option_then_the_variable_and_never_the_hub_unasked(monkeypatch):
    monkeypatch.delenv("DYNALIGN_IFEVAL_PATH", raising=False)
    with pytest.raises(ifeval.IFEvalUnavailable, match="set ifeval_path or DYNALIGN_IFEVAL_PATH"):
        ifeval.default_source(None)
    assert ifeval.default_source("hub:google/IFEval") == "hub:google/IFEval"
    monkeypatch.setenv("DYNALIGN_IFEVAL_PATH", "/data/ifeval.jsonl")
    assert ifeval.default_source(None) == "/data/ifeval.jsonl"
    assert ifeval.default_source("mine.jsonl") == "mine.jsonl"


def test_the_hub_dataset_offline_is_hub_unavailable():
    with pytest.raises(ifeval.IFEvalUnavailable, match="set ifeval_path or DYNALIGN_IFEVAL_PATH"):
        ifeval.load_rows("hub:google/IFEval", limit=3)
