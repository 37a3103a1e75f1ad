"""ValueSpec: the data that defines a value (definition, pillars, rubric, prompts).

A value package ships a TOML file and registers `load_value_file(...)`'s result through the
`register_values` hook. Everything a rewarder or prompt generator needs about the value comes
from here, so a new value never needs code beyond those few lines.
"""

from __future__ import annotations

from pathlib import Path

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dynalign.errors import ValueSpecError
from dynalign.files import read_jsonl_strict, read_text


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


class ValuePrompt(_Strict):
    """A task prompt shipped with the value (used by the `file` prompt source by default)."""

    prompt: str = Field(min_length=1)
    pillar: str | None = None


class ValueSpec(_Strict):
    """A value to align to: one unified definition, its pillars and a holistic score rubric.

    `system_prompt` is shown to the policy while it generates (and left out of the loss).
    Labeled pairs come in two disjoint sets: `calibration` (judge-check, choosing a reward
    signal) and `held_out` (evaluation only, never used to choose anything).
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
    prompts: tuple[ValuePrompt, ...] = ()
    templates: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rubric_is_contiguous(self) -> ValueSpec:
        scores = sorted(level.score for level in self.rubric)
        if scores != list(range(scores[0], scores[0] + len(scores))):
            raise ValueError(f"rubric scores must be consecutive integers, got {scores}")
        pillar_names = {p.name for p in self.pillars}
        for item in (*self.calibration, *self.held_out, *self.prompts):
            if item.pillar is not None and item.pillar not in pillar_names:
                raise ValueError(f"pillar {item.pillar!r} is not one of {sorted(pillar_names)}")
        shared = {p.prompt for p in self.calibration} & {p.prompt for p in self.held_out}
        if shared:
            raise ValueError(f"held_out pairs must not reuse calibration prompts: {sorted(shared)[0]!r}")
        return self

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
    if not path.exists():
        raise ValueSpecError(f"value file {path} does not exist")
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
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ValueSpecError(f"{path}: {where}: {first['msg']} (fix the value file)") from exc


def _read_prompt_lines(path: Path) -> list[dict]:
    if not path.exists():
        raise ValueSpecError(f"prompts_file {path} does not exist (fix the value file)")
    return read_jsonl_strict(path, ValueSpecError)
