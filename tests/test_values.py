"""Value files: what a broken one says."""

from __future__ import annotations

import pytest

from dynalign.errors import ValueSpecError
from dynalign.values import load_value_file
from dynalign_value_ca import collective_agency

GOOD = """
name = "tiny"
title = "Tiny"
definition = "Be kind."
system_prompt = "Be kind."
[[pillars]]
name = "Kindness"
description = "Kind words."
[[rubric]]
score = 0
meaning = "Unkind."
[[rubric]]
score = 1
meaning = "Kind."
"""


def test_a_minimal_value_file_loads(tmp_path):
    (tmp_path / "v.toml").write_text(GOOD)
    spec = load_value_file(tmp_path / "v.toml")
    assert spec.rubric_text() == "1: Kind.\n0: Unkind."


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.split("[[pillars]]")[0] + "[[rubric]]" + t.split("[[rubric]]", 1)[1], "pillars: Field required"),
        (lambda t: t.split("[[rubric]]")[0], "rubric: Field required"),
        (lambda t: t.replace("score = 1", "score = 3"), "consecutive integers"),
        (lambda t: t.replace('name = "tiny"', 'name = "Tiny Value"'), "name: String should match pattern"),
        (lambda t: t + "colour = 'blue'\n", "Extra inputs are not permitted"),
        (lambda t: t.replace('title = "Tiny"', 'title = "Tiny'), "TOML syntax error"),
    ],
)
def test_broken_value_files_name_file_and_field(tmp_path, edit, expected):
    path = tmp_path / "v.toml"
    path.write_text(edit(GOOD))
    with pytest.raises(ValueSpecError) as err:
        load_value_file(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_calibration_pillar_must_exist(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text(GOOD + '[[calibration]]\nprompt = "p"\nbetter = "b"\nworse = "w"\npillar = "Speed"\n')
    with pytest.raises(ValueSpecError, match="pillar 'Speed' is not one of"):
        load_value_file(path)


def test_rubric_and_pillar_text_helpers():
    spec = collective_agency()
    assert spec.rubric_text().splitlines()[0].startswith("5: ")
    assert spec.pillars_text().count("\n- ") == 3
