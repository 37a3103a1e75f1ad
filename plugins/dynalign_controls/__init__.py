"""Built-in control rewarder `random-reward`: seeded uniform scores that carry no information.

A placebo for experiments: train with it under the same settings as a real signal, and the
difference between the two runs' efficacy numbers is what the signal did, rather than what any
training (drift, more or less random text) does to the metrics.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from pydantic import Field, model_validator

from dynalign import hookimpl
from dynalign.api import Options, Rewarder, completion_text, prompt_text


class RandomRewardOptions(Options):
    """Options of the `random-reward` control."""

    low: float = Field(0.0, description="Smallest score.")
    high: float = Field(1.0, description="Largest score.")

    @model_validator(mode="after")
    def _ordered(self) -> RandomRewardOptions:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class RandomRewarder(Rewarder):
    """Placebo control: a uniform score in [low, high] that ignores what the answer says."""

    name = "random-reward"
    aliases = ("placebo",)
    Options = RandomRewardOptions
    options: RandomRewardOptions

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """One score per completion, fixed by the run's seed, the prompt and the completion (so a
        resumed run scores a repeated sample the same), independent of its quality."""
        seed = self.context.seed if self.context is not None else 0
        scores: list[float | None] = []
        for prompt, completion in zip(prompts, completions):
            key = f"{seed}\0{prompt_text(prompt)}\0{completion_text(completion)}"
            digest = hashlib.sha256(key.encode()).digest()
            scores.append(random.Random(digest).uniform(self.options.low, self.options.high))
        return scores


@hookimpl
def register_rewarders(register):
    """Register the `random-reward` control (alias `placebo`)."""
    register(RandomRewarder)
