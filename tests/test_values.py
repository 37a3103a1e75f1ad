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


PAIR = '[[{table}]]\nprompt = "{prompt}"\nbetter = "b"\nworse = "w"\n'


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            PAIR.format(table="calibration", prompt="p") + 'pillar = "Speed"\n',
            "calibration[0].pillar: 'Speed' is not one of the pillars ['Kindness']",
        ),
        (
            PAIR.format(table="held_out", prompt="a")
            + PAIR.format(table="held_out", prompt="b")
            + 'pillar = "Speed"\n',
            "held_out[1].pillar: 'Speed' is not one of the pillars",
        ),
        ('[[prompts]]\nprompt = "Hi"\npillar = "Speed"\n', "prompts[0].pillar: 'Speed' is not one of"),
        (
            PAIR.format(table="calibration", prompt="p") + PAIR.format(table="held_out", prompt="p"),
            "held_out[0].prompt: reuses the prompt of calibration[0]",
        ),
        (
            '[[pillars]]\nname = "Kindness"\ndescription = "Again."\n',
            "pillars[1].name: 'Kindness' is also pillars[0]; give each pillar its own name",
        ),
        ("[[rubric]]\nscore = 5\nmeaning = 'Saintly.'\n", "rubric: scores must be consecutive integers"),
    ],
)
def test_cross_field_errors_name_the_entry(tmp_path, extra, expected):
    path = tmp_path / "v.toml"
    path.write_text(GOOD + extra)
    with pytest.raises(ValueSpecError) as err:
        load_value_file(path)
    assert expected in str(err.value) and "(top level)" not in str(err.value)


def test_a_toml_missing_beside_package_code_is_package_data_left_out_of_the_wheel(tmp_path):
    package = tmp_path / "site" / "dynalign_value_kindness"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    with pytest.raises(ValueSpecError) as err:
        load_value_file(package / "kindness.toml")
    assert "package data missing from the installed package 'dynalign_value_kindness'" in str(err.value)
    assert "[tool.setuptools.package-data]" in str(err.value)
    with pytest.raises(ValueSpecError, match=r"v.toml does not exist$"):
        load_value_file(tmp_path / "v.toml")  # not beside package code: just missing


def test_rubric_and_pillar_text_helpers():
    spec = collective_agency()
    assert spec.rubric_text().splitlines()[0].startswith("5: ")
    assert spec.pillars_text().count("\n- ") == 3
