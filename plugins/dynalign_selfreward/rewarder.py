"""Self-reward: the policy scores its own candidates for the value, with no outside judge.

Signals (`mode`):
- `probability` (the paper's holistic 0-5 score): the expected score from the judge's
  next-token distribution after "Score: " (one forward pass; continuous, rare ties).
- `verdict`: a short written judgment, parsed for its last well-formed score (None if absent).
- `contrast`: how much more likely the candidate is with the value's system prompt than
  without it, under the reference policy (see `dynalign_selfreward.signals`).
- `auto`: measures the candidate signals on the value's calibration pairs when the policy is
  bound, picks the most accurate, says which and why, and warns if none is above chance.
"""

from __future__ import annotations

import statistics
from typing import Any, Literal

from pydantic import Field, model_validator

from dynalign.api import (
    DynalignError,
    Options,
    PolicyHandle,
    Rewarder,
    as_conversation,
    completion_text,
    pillar_messages,
    pointwise_messages,
    prompt_text,
    with_system,
)
from dynalign_selfreward.signals import (
    contrast_context,
    contrast_scores,
    probability_scores,
    verdict_scores,
)

SIGNALS = ("probability", "verdict", "contrast-sum", "contrast-mean")
COUNTER_SIGNALS = ("contrast-sum-counter", "contrast-mean-counter")


class SelfRewardOptions(Options):
    """Options of the `self-reward` rewarder."""

    mode: Literal["auto", "probability", "verdict", "contrast"] = Field(
        "auto", description="auto: the best-measured signal on the calibration pairs."
    )
    judge: Literal["current", "frozen"] | None = Field(
        None, description="Score with the live or the initial policy; default current for judging, frozen for contrast."
    )
    aggregation: Literal["sum", "mean"] = Field("sum", description="contrast: summed or per-token mean log ratio.")
    contrast_context: Literal["default", "empty", "counter"] = Field(
        "default",
        description="contrast against: the template's default system prompt, an empty one, or counter_prompt.",
    )
    counter_prompt: str | None = Field(
        None, description="System prompt to contrast against (e.g. 'Answer generically')."
    )
    auto_candidates: list[str] | None = Field(
        None, description="Signals auto may pick (names as in judge-check); default all but verdict."
    )
    pillar_diagnostics: bool = Field(False, description="Also log per-pillar judge scores (never rewarded).")
    verdict_max_new_tokens: int = Field(48, ge=4, description="Length of a written verdict.")

    @model_validator(mode="after")
    def _counter_needs_text(self) -> SelfRewardOptions:
        if self.contrast_context == "counter" and not (self.counter_prompt or "").strip():
            raise ValueError("contrast_context = 'counter' needs counter_prompt")
        known = SIGNALS + (COUNTER_SIGNALS if self.counter_prompt else ())
        unknown = [n for n in self.auto_candidates or () if n not in known]
        if unknown:
            raise ValueError(f"auto_candidates: unknown signal {unknown[0]!r}; choose from {', '.join(known)}")
        return self


class SelfRewarder(Rewarder):
    """The policy judges its own candidates with one score for the value."""

    name = "self-reward"
    aliases = ("self",)
    needs_policy = True
    Options = SelfRewardOptions
    options: SelfRewardOptions

    def __init__(self, options: Options | None = None, context: Any = None) -> None:
        super().__init__(options, context)
        self.policy: PolicyHandle | None = None
        self.chosen: Rewarder | None = None  # auto mode: the signal it picked
        self.auto_report: dict[str, Any] | None = None
        self._scored = 0
        self._unscorable = 0
        self._scores: list[float] = []
        self._pillar_scores: dict[str, list[float]] = {}

    def signal_variants(self) -> dict[str, Rewarder]:
        """probability, verdict, and contrast with each aggregation (and counter context if set)."""
        base = self.options.model_dump()
        variants = {
            "probability": {"mode": "probability"},
            "verdict": {"mode": "verdict"},
            "contrast-sum": {"mode": "contrast", "aggregation": "sum", "contrast_context": "default"},
            "contrast-mean": {"mode": "contrast", "aggregation": "mean", "contrast_context": "default"},
        }
        if self.options.counter_prompt:
            for aggregation in ("sum", "mean"):
                variants[f"contrast-{aggregation}-counter"] = {
                    "mode": "contrast",
                    "aggregation": aggregation,
                    "contrast_context": "counter",
                }
        built = {}
        for name, changes in variants.items():
            options = SelfRewardOptions(**{**base, **changes, "pillar_diagnostics": False})
            built[name] = SelfRewarder(options, self.context)
        return built

    def bind_policy(self, policy: PolicyHandle) -> None:
        """Score with this policy from now on; in auto mode, measure and pick the signal now."""
        self.policy = policy
        if self.options.mode == "auto":
            from dynalign_selfreward.auto import choose_signal

            variants = self.signal_variants()
            self.chosen, self.auto_report = choose_signal(variants, self.options.auto_candidates, self.context, policy)
            # measured without them (they cost passes); the chosen signal logs them if asked
            self.chosen.options = self.chosen.options.model_copy(
                update={"pillar_diagnostics": self.options.pillar_diagnostics}
            )

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """Score each completion of its prompt with the configured (or chosen) signal."""
        if self.policy is None or self.context is None:
            raise DynalignError(
                "self-reward needs a policy to judge with: use it as a rewarder of an optimizer, "
                "or through `dynalign score`/`judge-check`, which bind the config's policy"
            )
        if self.chosen is not None:
            return self.chosen(prompts, completions, **columns)
        scores = self._signal(prompts, completions, columns.get("completion_ids"))
        self._scored += len(scores)
        self._unscorable += sum(s is None for s in scores)
        self._scores.extend(s for s in scores if s is not None)
        return scores

    @property
    def uses_reference(self) -> bool:
        """Whether scores come from the initial policy rather than the live one."""
        judge = self.options.judge or ("frozen" if self.options.mode == "contrast" else "current")
        return judge == "frozen"

    def _signal(self, prompts: list[Any], completions: list[Any], completion_ids: Any) -> list[float | None]:
        assert self.policy is not None
        value = self.context.value
        reference = self.uses_reference
        if self.options.mode == "contrast":
            turns = [with_system(as_conversation(p, "user"), None) for p in prompts]
            answers: list[Any] = [completion_text(c) for c in completions]
            if completion_ids is not None and len(completion_ids) == len(answers):
                answers = [list(ids) for ids in completion_ids]  # the exact sampled tokens, end token included
            against = contrast_context(self.options.contrast_context, self.options.counter_prompt)
            return list(
                contrast_scores(
                    self.policy,
                    value.system_prompt.strip(),
                    turns,
                    answers,
                    against=against,
                    aggregation=self.options.aggregation,
                    reference=reference,
                )
            )
        pairs = [(prompt_text(p), completion_text(c)) for p, c in zip(prompts, completions)]
        scores = self._judge([pointwise_messages(value, p, c) for p, c in pairs], reference)
        if self.options.pillar_diagnostics:
            for pillar in value.pillar_names:
                per_pillar = self._judge([pillar_messages(value, pillar, p, c) for p, c in pairs], reference)
                self._pillar_scores.setdefault(pillar, []).extend(s for s in per_pillar if s is not None)
        return scores

    def _judge(self, conversations: list[Any], reference: bool) -> list[float | None]:
        assert self.policy is not None
        value = self.context.value
        if self.options.mode == "verdict":
            return verdict_scores(self.policy, value, conversations, self.options.verdict_max_new_tokens, reference)
        return probability_scores(self.policy, value, conversations, reference)

    def pop_metrics(self) -> dict[str, float]:
        """Unscorable rate, mean score and (if enabled) per-pillar means since the last call."""
        if self.chosen is not None:
            return self.chosen.pop_metrics()
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
