"""Self-reward: one holistic 0-5 score per candidate, from the live (or frozen initial) policy.

`probability` mode reads the judge's next-token distribution over the score digits after
"Score: " and returns the expected score (one forward pass per batch, continuous rewards,
rare ties). `verdict` mode lets the judge write a short judgment and parses the last
well-formed score; an unparsable verdict is None (TRL's "unscorable") and counted.
"""

from __future__ import annotations

import statistics
from contextlib import nullcontext
from typing import Any, Literal

from pydantic import Field

from dynalign.errors import DynalignError
from dynalign.interfaces import GenerationParams, Options, PolicyHandle, Rewarder
from dynalign.judging import (
    SCORE_PREFIX,
    completion_text,
    expected_score,
    parse_score,
    pillar_messages,
    pointwise_messages,
    prompt_text,
    score_choices,
)


class SelfRewardOptions(Options):
    """Options of the `self-reward` rewarder."""

    mode: Literal["probability", "verdict"] = Field("probability", description="Expected score, or parsed verdict.")
    judge: Literal["current", "frozen"] = Field("current", description="Judge with the live policy or the initial one.")
    pillar_diagnostics: bool = Field(False, description="Also log per-pillar scores (never rewarded).")
    verdict_max_new_tokens: int = Field(48, ge=4, description="Length of a written verdict.")
    batch_size: int = Field(8, ge=1)


class SelfRewarder(Rewarder):
    """The policy judges its own candidates with one holistic score for the value."""

    name = "self-reward"
    aliases = ("self",)
    Options = SelfRewardOptions
    options: SelfRewardOptions

    def __init__(self, options: Options | None = None, context: Any = None) -> None:
        super().__init__(options, context)
        self.policy: PolicyHandle | None = None
        self._scored = 0
        self._unscorable = 0
        self._scores: list[float] = []
        self._pillar_scores: dict[str, list[float]] = {}

    def bind_policy(self, policy: PolicyHandle) -> None:
        """Judge with this policy from now on."""
        self.policy = policy

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """Score each completion of its prompt with the value's holistic rubric."""
        if self.policy is None or self.context is None:
            raise DynalignError("self-reward needs the policy being trained; use it as a rewarder of an optimizer")
        value = self.context.value
        pairs = [(prompt_text(p), completion_text(c)) for p, c in zip(prompts, completions)]
        conversations = [pointwise_messages(value, p, c) for p, c in pairs]
        with self._judge() as model:
            scores = self._score(model, conversations)
            if self.options.pillar_diagnostics:
                for pillar in value.pillar_names:
                    per_pillar = self._score(model, [pillar_messages(value, pillar, p, c) for p, c in pairs])
                    self._pillar_scores.setdefault(pillar, []).extend(s for s in per_pillar if s is not None)
        self._scored += len(scores)
        self._unscorable += sum(s is None for s in scores)
        self._scores.extend(s for s in scores if s is not None)
        return scores

    def _judge(self) -> Any:
        assert self.policy is not None
        if self.options.judge == "frozen":
            return self.policy.frozen()
        return nullcontext(self.policy.model)

    def _score(self, model: Any, conversations: list[Any]) -> list[float | None]:
        from dynalign_hf.textgen import generate, next_token_probs, render

        value = self.context.value
        tokenizer = self.policy.tokenizer
        was_training = model.training
        model.eval()
        try:
            if self.options.mode == "probability":
                texts = [render(tokenizer, c, SCORE_PREFIX) for c in conversations]
                choices = score_choices(value.score_min, value.score_max)
                probs = next_token_probs(model, tokenizer, texts, choices, self.options.batch_size)
                return [expected_score(p) for p in probs]
            params = GenerationParams(max_new_tokens=self.options.verdict_max_new_tokens, temperature=0.0)
            verdicts = generate(model, tokenizer, conversations, params, self.options.batch_size)
            return [parse_score(v[0], value.score_min, value.score_max) for v in verdicts]
        finally:
            model.train(was_training)

    def pop_metrics(self) -> dict[str, float]:
        """Unscorable rate, mean score and (if enabled) per-pillar means since the last call."""
        metrics: dict[str, float] = {}
        if self._scored:
            metrics["unscorable_rate"] = self._unscorable / self._scored
        if self._scores:
            metrics["score_mean"] = statistics.fmean(self._scores)
        for pillar, scores in self._pillar_scores.items():
            if scores:
                metrics[f"pillar/{pillar}"] = statistics.fmean(scores)
        self._scored = self._unscorable = 0
        self._scores, self._pillar_scores = [], {}
        return metrics
