"""Rewarder `judge`: any model backend scores candidates against the value's rubric."""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from dynalign.api import (
    INVALID_RATE,
    SCORE_MEAN,
    SCORE_PREFIX,
    UNSCORABLE_RATE,
    CallCache,
    ChatModel,
    ConfigError,
    FailureBudget,
    GenerationParams,
    ModelRef,
    Options,
    Rewarder,
    call_key,
    combine_orders,
    completion_text,
    expected_score,
    group_indices,
    groupwise_messages,
    mean_or_none,
    pairwise_messages,
    parse_group_scores,
    parse_score,
    pointwise_messages,
    preference_value,
    prompt_text,
    rubric_system,
    score_choices,
)


class JudgeOptions(Options):
    """Options of the `judge` rewarder."""

    model: ModelRef = Field(description="The judge: any model backend, e.g. {backend = 'openai', options = {...}}.")
    mode: Literal["pointwise", "pairwise", "groupwise"] = Field(
        "pointwise",
        description="pointwise: a rubric score per candidate; pairwise: win rate against the prompt's other "
        "candidates, both orders asked; groupwise: all candidates of a prompt scored in one call.",
    )
    samples: int = Field(1, ge=1, description="K verdicts sampled and averaged (when log-probabilities are not used).")
    logprobs: Literal["auto", "always", "never"] = Field(
        "auto", description="Pointwise: probability-weighted score from token log-probabilities where available."
    )
    temperature: float | None = Field(None, ge=0.0, description="Judge sampling temperature (default 0, or 1 if K>1).")
    max_new_tokens: int = Field(512, ge=1, description="Room for the judge's reasoning before its verdict.")
    failure_budget: int = Field(20, ge=1, description="Invalid judgments in a row before the run stops.")
    cache: bool = Field(True, description="Keep verdicts on disk and reuse them for identical requests.")
    cache_dir: str | None = Field(None, description="Folder for the verdict cache (default: the run directory).")


class JudgeRewarder(Rewarder):
    """An external judge (any model backend) scores candidates against the value's rubric.

    Modes: pointwise, pairwise (both orders) or groupwise; invalid verdicts give None and are counted.
    """

    name = "judge"
    aliases = ("external-judge",)
    Options = JudgeOptions
    options: JudgeOptions

    def __init__(self, options: Options | None = None, context: Any = None) -> None:
        super().__init__(options, context)
        if context is None:
            raise ConfigError("the judge rewarder needs a run context (build it through a config)")
        context.check_model(self.options.model, f"rewarders[{self.name}].options.model")
        self._model: ChatModel | None = None
        self._cache: CallCache | None = None
        self.budget = FailureBudget(self.options.failure_budget, f"judge {self.options.model.backend}")
        self._stats: Counter[str] = Counter()
        self._scores: list[float] = []

    @property
    def model(self) -> ChatModel:
        """The judge backend, built on first use."""
        if self._model is None:
            self._model = self.context.build_model(self.options.model, where=f"rewarders[{self.name}].options.model")
            self.budget.who = f"judge {self._model.describe().get('model') or self.options.model.backend}"
        return self._model

    @property
    def cache(self) -> CallCache:
        """The verdict cache (in the run directory, the configured folder, or memory only)."""
        if self._cache is None:
            folder = Path(self.options.cache_dir) if self.options.cache_dir else self.context.run_dir
            path = folder / "judge_cache.jsonl" if folder is not None else None
            self._cache = CallCache(path, field="verdict", enabled=self.options.cache)
        return self._cache

    def _use_logprobs(self) -> bool:
        if self.options.mode != "pointwise" or self.options.logprobs == "never":
            return False
        if self.options.logprobs == "always" and not self.model.supports_token_probs:
            raise ConfigError(
                f"judge backend {self.model.name!r} returns no token probabilities; set logprobs = 'auto' or 'never'"
            )
        return self.model.supports_token_probs

    def _params(self) -> GenerationParams:
        k = self.options.samples
        temperature = self.options.temperature if self.options.temperature is not None else (0.0 if k == 1 else 1.0)
        return GenerationParams(max_new_tokens=self.options.max_new_tokens, temperature=temperature, n=k)

    def _key(self, *parts: Any) -> str:
        value = self.context.value
        rubric = call_key(rubric_system(value))
        return call_key(
            self.model.describe(), value.name, rubric, self.options.mode, self._params().model_dump(), parts
        )

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """Score each completion; None where no valid verdict came back."""
        asked = [prompt_text(p) for p in prompts]
        answers = [completion_text(c) for c in completions]
        if self.options.mode == "pointwise":
            scores = self._pointwise(asked, answers)
        elif self.options.mode == "pairwise":
            scores = self._pairwise(asked, answers)
        else:
            scores = self._groupwise(asked, answers)
        self._stats["candidates"] += len(scores)
        self._stats["unscored"] += sum(s is None for s in scores)
        self._scores.extend(s for s in scores if s is not None)
        return scores

    def _lookup(self, keys: list[str]) -> tuple[list[Any], list[int]]:
        found = [self.cache.get(k) for k in keys]
        return found, [i for i, v in enumerate(found) if v is None]

    def _sampled(self, conversations: list[Any], parse: Any) -> list[tuple[Any, str]]:
        """Ask K samples per conversation; (averaged verdict or None, last reply) for each."""
        out = []
        for replies in self.model.chat(conversations, self._params()) if conversations else []:
            verdicts = [parse(r) for r in replies]
            self._stats["samples"] += len(verdicts)
            self._stats["invalid_samples"] += sum(v is None for v in verdicts)
            out.append((verdicts, replies[-1] if replies else ""))
        return out

    def _settle(self, keys: list[str], found: list[Any], todo: list[int], verdicts: list[tuple[Any, str]]) -> None:
        for index, (verdict, _) in zip(todo, verdicts):  # cache every valid verdict before any budget error
            found[index] = verdict
            self.cache.put(keys[index], verdict)
        for verdict, reply in verdicts:
            self.budget.record(verdict is not None, reply)

    def _pointwise(self, asked: list[str], answers: list[str]) -> list[float | None]:
        value = self.context.value
        low, high = value.score_min, value.score_max
        probs = self._use_logprobs()
        keys = [self._key("probs" if probs else "sampled", p, a) for p, a in zip(asked, answers)]
        found, todo = self._lookup(keys)
        conversations = [pointwise_messages(value, asked[i], answers[i]) for i in todo]
        if probs and conversations:
            dists = self.model.next_token_probs(conversations, score_choices(low, high), SCORE_PREFIX)
            verdicts = [(expected_score(d), json.dumps(d)) for d in dists]
            self._stats["samples"] += len(verdicts)
            self._stats["invalid_samples"] += sum(v is None for v, _ in verdicts)
        else:
            sampled = self._sampled(conversations, lambda r: parse_score(r, low, high))
            verdicts = [(mean_or_none(v), reply) for v, reply in sampled]
        self._settle(keys, found, todo, verdicts)
        return found

    def _pairwise(self, asked: list[str], answers: list[str]) -> list[float | None]:
        value = self.context.value
        pairs = [(i, j) for group in group_indices(asked) for i, j in combinations(group, 2)]
        self._stats["single_candidate_prompts"] += sum(len(g) == 1 for g in group_indices(asked))
        orders = [o for i, j in pairs for o in ((i, j), (j, i))]
        keys = [self._key("pair", asked[a], answers[a], answers[b]) for a, b in orders]
        found, todo = self._lookup(keys)
        conversations = [pairwise_messages(value, asked[orders[k][0]], *(answers[x] for x in orders[k])) for k in todo]
        sampled = self._sampled(conversations, preference_value)
        self._settle(keys, found, todo, [(mean_or_none(v), reply) for v, reply in sampled])
        outcomes: dict[int, list[float]] = {i: [] for i in range(len(answers))}
        for n, (i, j) in enumerate(pairs):
            outcome, disagreed = combine_orders(found[2 * n], found[2 * n + 1])
            self._stats["pairs"] += 1
            self._stats["order_disagreements"] += disagreed
            if outcome is not None:
                outcomes[i].append(outcome)
                outcomes[j].append(1.0 - outcome)
        return [mean_or_none(outcomes[i]) for i in range(len(answers))]

    def _groupwise(self, asked: list[str], answers: list[str]) -> list[float | None]:
        value = self.context.value
        groups = group_indices(asked)
        keys = [self._key("group", asked[g[0]], [answers[i] for i in g]) for g in groups]
        found, todo = self._lookup(keys)
        conversations = [groupwise_messages(value, asked[groups[k][0]], [answers[i] for i in groups[k]]) for k in todo]

        def parse(reply: str, size: int) -> list[float] | None:
            return parse_group_scores(reply, size, value.score_min, value.score_max)

        verdicts = []
        for k, convo in zip(todo, conversations):
            sampled = self._sampled([convo], lambda r, n=len(groups[k]): parse(r, n))[0]
            valid = [v for v in sampled[0] if v is not None]
            verdicts.append(([sum(col) / len(valid) for col in zip(*valid)] if valid else None, sampled[1]))
        self._settle(keys, found, todo, verdicts)
        scores: list[float | None] = [None] * len(answers)
        for group, verdict in zip(groups, found):
            for position, index in enumerate(group):
                scores[index] = verdict[position] if verdict is not None else None
        return scores

    def pop_metrics(self) -> dict[str, float]:
        """Rates since the last call: invalid verdicts, unscored candidates, cache hits, order
        disagreements (pairwise), mean score; then reset."""
        s, cache = self._stats, self.cache
        looked = cache.hits + cache.misses
        metrics = {
            INVALID_RATE: s["invalid_samples"] / s["samples"] if s["samples"] else 0.0,
            UNSCORABLE_RATE: s["unscored"] / s["candidates"] if s["candidates"] else 0.0,
            "cache_hit_rate": cache.hits / looked if looked else 0.0,
        }
        if self._scores:
            metrics[SCORE_MEAN] = sum(self._scores) / len(self._scores)
        if s["pairs"]:
            metrics["order_disagreement_rate"] = s["order_disagreements"] / s["pairs"]
        self._stats, self._scores, cache.hits, cache.misses = Counter(), [], 0, 0
        return metrics
