"""The teacher context: what the value-prompted self sees when it acts as its own teacher.

Self-reward's contrast signal scores an answer by how much likelier the teacher context makes
it, and the GRPO optimizer's `context_distillation` credits each token by the same teacher.
By default the teacher context is the value's system prompt alone; a `Teacher` may add K
exemplar answers after it (from the value's `[[exemplars]]`, or the better answers of
calibration pairs, which are then left out of every calibration measurement that chooses).

A value file's `[teacher]` table sets the value's own teacher; a run config's `teacher` table
replaces it for one run. Both places hold the same `Teacher` model, read by every consumer
through `ValueSpec.teacher_prompt()`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_HEADER = "Examples of answers that do this well:"
DEFAULT_FORMAT = "Request: {prompt}\nA good answer: {answer}"


class Teacher(BaseModel):
    """How the teacher context is built from the value (defaults: the system prompt alone).

    `exemplars` is K, the number of exemplar answers appended; `pick` names which ones (indices
    into `source`, in the order shown; default the first K); `format` renders one exemplar from
    `{prompt}` and `{answer}`; `header` introduces them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exemplars: int = Field(0, ge=0, description="K exemplar answers after the system prompt (0: the prompt alone).")
    source: Literal["exemplars", "calibration"] = Field(
        "exemplars",
        description="Where exemplars come from: the value's [[exemplars]], or calibration pairs' better answers "
        "(those pairs are then left out of every calibration measurement that chooses).",
    )
    pick: tuple[int, ...] | None = Field(
        None, description="Which exemplars, by index into the source, in the order shown (default: the first K)."
    )
    header: str = Field(DEFAULT_HEADER, description="The line introducing the exemplars.")
    format: str = Field(DEFAULT_FORMAT, description="One exemplar, from {prompt} and {answer}.")

    @model_validator(mode="after")
    def _consistent(self) -> Teacher:
        if self.pick is not None and self.exemplars not in (0, len(self.pick)):
            raise ValueError(f"exemplars = {self.exemplars} but pick names {len(self.pick)}; make them agree")
        if self.pick is not None and len(set(self.pick)) != len(self.pick):
            raise ValueError(f"pick {list(self.pick)} names an exemplar twice")
        problem = check_format(self.format)
        if problem:
            raise ValueError(problem)
        return self

    def indices(self) -> tuple[int, ...]:
        """The source indices shown, in order (empty for the system prompt alone)."""
        if self.pick is not None:
            return self.pick
        return tuple(range(self.exemplars))

    def describe(self) -> str:
        """A short name: `system prompt` or `+K exemplars (source: indices)`."""
        shown = self.indices()
        if not shown:
            return "system prompt"
        return f"system prompt + {len(shown)} {self.source} {list(shown)}"


def render(system_prompt: str, teacher: Teacher, shown: list[tuple[str, str]]) -> str:
    """The teacher's system message: the value's system prompt, then the exemplars (prompt,
    answer) in order; exactly the stripped system prompt when there are none."""
    base = system_prompt.strip()
    if not shown:
        return base
    examples = "\n\n".join(teacher.format.format(prompt=p.strip(), answer=a.strip()) for p, a in shown)
    return f"{base}\n\n{teacher.header.strip()}\n\n{examples}"


def check_format(template: str) -> str | None:
    """Why `template` cannot render an exemplar (None when it can)."""
    try:
        template.format(prompt="", answer="")
    except (KeyError, IndexError, ValueError) as exc:
        return f"format must use only {{prompt}} and {{answer}}: {exc!r}"
    return None
