"""ValueSpec: the data that defines a value (definition, pillars, rubric, prompts).

A value package ships a TOML file and registers `load_value_file(...)`'s result through the
`register_values` hook. Everything a rewarder or prompt generator needs about the value comes
from here, so a new value never needs code beyond those few lines.
"""

from __future__ import annotations

from pathlib import Path

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dynalign.errors import ValueSpecError, format_location
from dynalign.files import read_jsonl_strict, read_text, require_file
from dynalign.teacher import Teacher, render


class _At(ValueError):
    """A cross-field error that knows which entry of the file it is about."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pillar(_Strict):
    """One facet of the value, with what advancing it looks like in an answer."""

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)


class RubricLevel(_Strict):
    """What one integer score on the holistic rubric means."""

    score: int
    meaning: str = Field(min_length=1)


class CalibrationPair(_Strict):
    """A prompt with a better and a worse answer for the value (a labeled pair).

    `kind` names the worse answer's flaw (e.g. generic, one-pillar, preachy, inaccurate,
    harms-absent; "easy" for an obviously bad one), for breakdowns.
    """

    prompt: str = Field(min_length=1)
    better: str = Field(min_length=1)
    worse: str = Field(min_length=1)
    pillar: str | None = None
    kind: str | None = None


class Exemplar(_Strict):
    """A good answer to a prompt, written to show the value; the teacher context may show it."""

    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    pillar: str | None = None


class ValuePrompt(_Strict):
    """A task prompt shipped with the value (used by the `file` prompt source by default)."""

    prompt: str = Field(min_length=1)
    pillar: str | None = None


class ValueSpec(_Strict):
    """A value to align to: one unified definition, its pillars and a holistic score rubric.

    `system_prompt` is shown to the policy while it generates (and left out of the loss).
    Labeled pairs come in two disjoint sets: `calibration` (judge-check, choosing a reward
    signal) and `held_out` (evaluation only, never used to choose anything). `exemplars`, a
    third set disjoint from both, are good answers the teacher context may show; `teacher`
    says how the teacher context is built (`dynalign.teacher`; default the system prompt).
    `templates` may override the prompt-generation agents' templates by role name.
    """

    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9-]*$")
    aliases: tuple[str, ...] = ()
    title: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    pillars: tuple[Pillar, ...] = Field(min_length=1)
    rubric: tuple[RubricLevel, ...] = Field(min_length=2)
    system_prompt: str = Field(min_length=1)
    seed_themes: tuple[str, ...] = ()
    calibration: tuple[CalibrationPair, ...] = ()
    held_out: tuple[CalibrationPair, ...] = ()
    exemplars: tuple[Exemplar, ...] = ()
    teacher: Teacher = Field(default_factory=Teacher)
    prompts: tuple[ValuePrompt, ...] = ()
    templates: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _entries_agree(self) -> ValueSpec:
        scores = sorted(level.score for level in self.rubric)
        if scores != list(range(scores[0], scores[0] + len(scores))):
            raise _At("rubric", f"scores must be consecutive integers, got {scores}")
        seen: dict[str, int] = {}
        for index, pillar in enumerate(self.pillars):
            if pillar.name in seen:
                raise _At(
                    f"pillars[{index}].name",
                    f"{pillar.name!r} is also pillars[{seen[pillar.name]}]; give each pillar its own name",
                )
            seen[pillar.name] = index
        for table in ("calibration", "held_out", "exemplars", "prompts"):
            for index, item in enumerate(getattr(self, table)):
                if item.pillar is not None and item.pillar not in seen:
                    raise _At(f"{table}[{index}].pillar", f"{item.pillar!r} is not one of the pillars {list(seen)}")
        calibration = {p.prompt: i for i, p in enumerate(self.calibration)}
        for index, pair in enumerate(self.held_out):
            if pair.prompt in calibration:
                raise _At(
                    f"held_out[{index}].prompt",
                    f"reuses the prompt of calibration[{calibration[pair.prompt]}]; "
                    "held-out pairs must be unseen by calibration",
                )
        labeled = {p.prompt: f"calibration[{i}]" for i, p in enumerate(self.calibration)}
        labeled.update({p.prompt: f"held_out[{i}]" for i, p in enumerate(self.held_out)})
        for index, exemplar in enumerate(self.exemplars):
            if exemplar.prompt in labeled:
                raise _At(
                    f"exemplars[{index}].prompt",
                    f"reuses the prompt of {labeled[exemplar.prompt]}; exemplars must not be labeled pairs",
                )
        problem = self.teacher_problem(self.teacher)
        if problem:
            raise _At("teacher", problem)
        return self

    def teacher_problem(self, teacher: Teacher) -> str | None:
        """Why `teacher` cannot be built from this value (None when it can)."""
        available = len(self.exemplars) if teacher.source == "exemplars" else len(self.calibration)
        wanted = teacher.indices()
        beyond = [i for i in wanted if i >= available]
        if beyond:
            return f"asks for {teacher.source} index {beyond[0]}, but the value has {available}"
        return None

    def with_teacher(self, teacher: Teacher) -> ValueSpec:
        """This value with another teacher context (raises ValueError if it cannot be built)."""
        problem = self.teacher_problem(teacher)
        if problem:
            raise ValueError(f"teacher: {problem}")
        return self.model_copy(update={"teacher": teacher})

    def teacher_exemplars(self, teacher: Teacher | None = None) -> list[tuple[str, str]]:
        """The (prompt, answer) exemplars `teacher` (default the value's own) shows, in order."""
        teacher = teacher or self.teacher
        if teacher.source == "exemplars":
            return [(self.exemplars[i].prompt, self.exemplars[i].answer) for i in teacher.indices()]
        return [(self.calibration[i].prompt, self.calibration[i].better) for i in teacher.indices()]

    def teacher_prompt(self, teacher: Teacher | None = None) -> str:
        """The teacher context's system message: the stripped system prompt, then the exemplars."""
        teacher = teacher or self.teacher
        return render(self.system_prompt, teacher, self.teacher_exemplars(teacher))

    def choosing_pairs(self, *teachers: Teacher) -> list[CalibrationPair]:
        """The calibration pairs a choice may be measured on: all but those whose better answer
        one of `teachers` (default the value's own) shows as an exemplar."""
        used = {i for t in teachers or (self.teacher,) if t.source == "calibration" for i in t.indices()}
        return [p for i, p in enumerate(self.calibration) if i not in used]

    @property
    def score_min(self) -> int:
        """Lowest rubric score."""
        return min(level.score for level in self.rubric)

    @property
    def score_max(self) -> int:
        """Highest rubric score."""
        return max(level.score for level in self.rubric)

    @property
    def pillar_names(self) -> list[str]:
        """The pillars' names, in file order."""
        return [p.name for p in self.pillars]

    def rubric_text(self) -> str:
        """The rubric as lines `score: meaning`, highest first."""
        levels = sorted(self.rubric, key=lambda level: -level.score)
        return "\n".join(f"{level.score}: {level.meaning}" for level in levels)

    def pillars_text(self) -> str:
        """The pillars as bullet lines `- Name: description`."""
        return "\n".join(f"- {p.name}: {p.description}" for p in self.pillars)


def load_value_file(path: str | Path) -> ValueSpec:
    """Read a value TOML file (plus an optional `prompts_file` JSONL beside it) into a ValueSpec.

    Raises ValueSpecError naming the file and the first missing or invalid field.
    """
    path = Path(path)
    require_file(path, "value file", ValueSpecError, _packaged_hint(path))
    try:
        data = tomllib.loads(read_text(path, ValueSpecError))
    except tomllib.TOMLDecodeError as exc:
        raise ValueSpecError(f"{path}: TOML syntax error: {exc}") from exc
    prompts_file = data.pop("prompts_file", None)
    if prompts_file is not None:
        data["prompts"] = [*data.get("prompts", []), *_read_prompt_lines(path.parent / prompts_file)]
    try:
        return ValueSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        if isinstance(cause, _At):
            raise ValueSpecError(f"{path}: {cause.where}: {cause} (fix the value file)") from exc
        where = format_location(first["loc"])
        raise ValueSpecError(f"{path}: {where}: {first['msg']} (fix the value file)") from exc


def _packaged_hint(path: Path) -> str:
    """Beside a Python package's code, a missing data file means the wheel was built without it."""
    if not (path.parent / "__init__.py").exists():
        return ""
    return (
        f"; it is package data missing from the installed package {path.parent.name!r}: list it under "
        f'[tool.setuptools.package-data] ({path.parent.name} = ["*.toml", "*.jsonl"]) and rebuild the wheel'
    )


def _read_prompt_lines(path: Path) -> list[dict]:
    require_file(path, "prompts_file", ValueSpecError, _packaged_hint(path) or " (fix the value file)")
    return read_jsonl_strict(path, ValueSpecError)
