"""The teacher context: exemplars in the value file, one place that builds it, and the
calibration pairs a teacher shows left out of every measurement that chooses."""

from __future__ import annotations

import pytest
from conftest import write_config
from test_values import GOOD, PAIR

from dynalign.api import ConfigError, RunContext, Teacher, ValueSpecError, load_value_file
from dynalign_selfreward.rewarder import SelfRewarder, SelfRewardOptions

EXEMPLAR = '[[exemplars]]\nprompt = "{prompt}"\nanswer = "{answer}"\n'


def _value(tmp_path, extra=""):
    pairs = "".join(PAIR.format(table="calibration", prompt=f"c{i}") for i in range(3))
    exemplars = EXEMPLAR.format(prompt="e0", answer="First answer.") + EXEMPLAR.format(prompt="e1", answer="Second.")
    path = tmp_path / "v.toml"
    path.write_text(GOOD + pairs + PAIR.format(table="held_out", prompt="h0") + exemplars + extra)
    return load_value_file(path)


def test_the_default_teacher_is_the_system_prompt_alone(tmp_path, ca_value):
    assert ca_value.teacher == Teacher()
    assert ca_value.teacher_prompt() == ca_value.system_prompt.strip()  # today's behaviour, unchanged
    assert _value(tmp_path).choosing_pairs() == list(_value(tmp_path).calibration)


def test_exemplars_follow_the_system_prompt_in_the_order_picked(tmp_path):
    value = _value(tmp_path)
    text = value.teacher_prompt(Teacher(pick=(1, 0), header="Good answers:", format="Q: {prompt}\nA: {answer}"))
    assert text == "Be kind.\n\nGood answers:\n\nQ: e1\nA: Second.\n\nQ: e0\nA: First answer."
    assert value.teacher_prompt(Teacher(exemplars=1)).endswith("Request: e0\nA good answer: First answer.")


@pytest.mark.parametrize(
    ("teacher", "expected"),
    [
        ({"exemplars": 3}, "asks for exemplars index 2, but the value has 2"),
        ({"source": "calibration", "pick": [5]}, "asks for calibration index 5, but the value has 3"),
    ],
)
def test_a_teacher_the_value_cannot_build_is_refused(tmp_path, teacher, expected):
    table = "[teacher]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in teacher.items())
    with pytest.raises(ValueSpecError, match=f"teacher: {expected}"):
        _value(tmp_path, table)
    with pytest.raises(ValueError, match=expected):
        _value(tmp_path).with_teacher(Teacher(**teacher))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"exemplars": 2, "pick": (0,)}, "exemplars = 2 but pick names 1"),
        ({"pick": (0, 0)}, "names an exemplar twice"),
        ({"exemplars": 1, "format": "{question}"}, "only {prompt} and {answer}"),
    ],
)
def test_inconsistent_teachers_say_why(fields, expected):
    with pytest.raises(ValueError, match=expected):
        Teacher(**fields)


@pytest.mark.parametrize(("table", "reused"), [("calibration", "c1"), ("held_out", "h0")])
def test_exemplars_are_disjoint_from_the_labeled_pairs(tmp_path, table, reused):
    extra = EXEMPLAR.format(prompt=reused, answer="Copied.")
    with pytest.raises(ValueSpecError, match=r"exemplars\[2\]\.prompt: reuses the prompt of " + table):
        _value(tmp_path, extra)


def test_calibration_exemplars_leave_their_pairs_out_of_choosing(tmp_path):
    value = _value(tmp_path, '[teacher]\nsource = "calibration"\npick = [1]\n')
    assert value.teacher_prompt().endswith("Request: c1\nA good answer: b")
    assert [p.prompt for p in value.choosing_pairs()] == ["c0", "c2"]
    other = Teacher(source="calibration", pick=(0,))
    assert [p.prompt for p in value.choosing_pairs(value.teacher, other)] == ["c2"]  # every measured teacher's


def test_collective_agency_ships_exemplars_for_every_pillar(ca_value):
    assert len(ca_value.exemplars) >= 8
    assert {e.pillar for e in ca_value.exemplars} == set(ca_value.pillar_names)
    seen = {p.prompt for p in (*ca_value.calibration, *ca_value.held_out, *ca_value.prompts)}
    assert not seen & {e.prompt for e in ca_value.exemplars}  # not even a training prompt
    for exemplar in ca_value.exemplars:
        assert 50 <= len(exemplar.answer.split()) <= 100  # the length of the labeled answers


def test_a_run_config_sets_the_teacher_for_the_whole_run(tmp_path, dynalign_registry):
    from dynalign.api import open_stack

    path = write_config(tmp_path / "c.toml", 'value = "ca"\n[teacher]\npick = [0, 2]\n')
    stack = open_stack(path, registry=dynalign_registry)
    assert stack.value.teacher == Teacher(pick=(0, 2))
    assert stack.rewarders[0].rewarder.context.value.teacher_prompt() == stack.value.teacher_prompt()
    bad = write_config(tmp_path / "bad.toml", 'value = "ca"\n[teacher]\nexemplars = 99\n')
    with pytest.raises(ConfigError, match="teacher: asks for exemplars index 8"):
        open_stack(bad, registry=dynalign_registry)


class _Recorder:
    """A policy handle that records the system messages the contrast scores under."""

    def __init__(self):
        self.systems = []

    def completion_logprobs(self, conversations, completions, *, reference):
        self.systems.append([c[0]["content"] if c[0]["role"] == "system" else None for c in conversations])
        return [[-1.0] * 3 for _ in completions]


def test_contrast_variants_score_under_each_measured_teacher(ca_value, dynalign_registry):
    teacher = Teacher(exemplars=2)
    rewarder = SelfRewarder(
        SelfRewardOptions(mode="contrast", teachers={"ex2": teacher}), RunContext(ca_value, dynalign_registry)
    )
    variants = rewarder.signal_variants()
    assert {"contrast-sum@ex2", "contrast-mean@ex2"} <= set(variants)
    for name, expected in (("contrast-sum", ca_value.teacher_prompt()), ("contrast-sum@ex2", None)):
        handle = _Recorder()
        variants[name].bind_policy(handle)
        variants[name]([[{"role": "user", "content": "Hi"}]], [[{"role": "assistant", "content": "Hello"}]])
        valued = handle.systems[0][0]
        assert valued == (expected or ca_value.teacher_prompt(teacher))
    with pytest.raises(ConfigError, match="teachers.many: asks for exemplars index"):
        SelfRewarder(
            SelfRewardOptions(mode="contrast", teachers={"many": Teacher(exemplars=50)}),
            RunContext(ca_value, dynalign_registry),
        )


def test_runs_started_before_the_teacher_key_existed_still_resume():
    from dynalign.runconfig import RunConfig
    from dynalign.rundir import fingerprint

    now = RunConfig().model_dump(mode="json")
    before = {k: v for k, v in now.items() if k != "teacher"}
    assert now["teacher"] is None and fingerprint(now) == fingerprint(before)
    assert fingerprint({**now, "teacher": {"exemplars": 8}}) != fingerprint(before)
