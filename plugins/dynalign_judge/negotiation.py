"""Rewarder `negotiation`: agents holding different perspectives deliberate over each candidate."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from typing import Any, Literal

from pydantic import Field, model_validator

from dynalign.api import (
    INVALID_RATE,
    UNSCORABLE_RATE,
    ChatModel,
    ConfigError,
    FailureBudget,
    GenerationParams,
    ModelRef,
    Options,
    Rewarder,
    RunDirectory,
    call_key,
    clean,
    completion_text,
    fence,
    parse_score,
    prompt_text,
    rubric_system,
)

RECORD_FILE = "negotiation.jsonl"


class AgentSpec(Options):
    """One negotiating agent: a name, the perspective it argues from, and optionally its own model."""

    name: str = Field(min_length=1)
    persona: str = Field(min_length=1, description="The perspective this agent argues from.")
    model: ModelRef | None = Field(None, description="This agent's model (default: the rewarder's `model`).")


class NegotiationOptions(Options):
    """Options of the `negotiation` rewarder."""

    model: ModelRef | None = Field(None, description="Model of agents (and mediator) without their own.")
    agents: list[AgentSpec] = Field(default_factory=list, description="Personas; empty: one agent per value pillar.")
    rounds: int = Field(2, ge=1, description="T: rounds of stating and revising scores at most.")
    tolerance: float = Field(1.0, ge=0.0, description="Agreement: highest minus lowest score at most this.")
    consensus: Literal["mean", "median", "mediator"] = Field("mean", description="How final scores become the reward.")
    mediator: ModelRef | None = Field(None, description="The mediator's model (default: `model`).")
    temperature: float = Field(0.7, ge=0.0)
    max_new_tokens: int = Field(384, ge=1)
    failure_budget: int = Field(20, ge=1, description="Candidates without a valid consensus in a row before stopping.")

    @model_validator(mode="after")
    def _complete(self) -> NegotiationOptions:
        if self.agents and len(self.agents) < 2:
            raise ValueError("negotiation needs at least 2 agents; add agents or leave `agents` empty (one per pillar)")
        if len({a.name for a in self.agents}) != len(self.agents):
            raise ValueError("agent names must be unique")
        if self.model is None and (not self.agents or any(a.model is None for a in self.agents)):
            raise ValueError("set `model` (or a `model` for every agent)")
        if self.consensus == "mediator" and self.mediator is None and self.model is None:
            raise ValueError("consensus = 'mediator' needs `mediator` or `model`")
        return self


class NegotiationRewarder(Rewarder):
    """Agents with different perspectives deliberate over each candidate; the reward is their consensus.

    By default one agent per value pillar; each states a score with an argument, reads the others'
    and revises for up to T rounds, until they agree within a tolerance.
    """

    name = "negotiation"
    Options = NegotiationOptions
    options: NegotiationOptions

    def __init__(self, options: Options | None = None, context: Any = None) -> None:
        super().__init__(options, context)
        if context is None:
            raise ConfigError("the negotiation rewarder needs a run context (build it through a config)")
        self.agents = list(self.options.agents) or [
            AgentSpec(
                name=p.name.lower(),
                persona=f"You champion {p.name}: {p.description} You weigh the value as a whole, but look "
                f"hardest at what the answer does for {p.name}.",
            )
            for p in context.value.pillars
        ]
        if len(self.agents) < 2:
            raise ConfigError(f"negotiation needs at least 2 agents; {context.value.name} has one pillar: add agents")
        where = f"rewarders[{self.name}].options"
        for k, agent in enumerate(self.agents):
            context.check_model(agent.model or self.options.model, f"{where}.agents[{k}].model")
        if self.options.consensus == "mediator":
            context.check_model(self.options.mediator or self.options.model, f"{where}.mediator")
        self._models: dict[str, ChatModel] = {}
        self.budget = FailureBudget(self.options.failure_budget, "negotiation")
        self._stats: Counter[str] = Counter()
        self._finals: dict[str, list[float]] = defaultdict(list)

    def _model(self, ref: ModelRef | None, where: str) -> ChatModel:
        ref = ref or self.options.model
        key = json.dumps(ref.model_dump(), sort_keys=True, default=str)
        if key not in self._models:
            self._models[key] = self.context.build_model(ref, where=f"rewarders[{self.name}].options.{where}")
        return self._models[key]

    def _params(self) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.options.max_new_tokens, temperature=self.options.temperature)

    def _ask(self, requests: list[tuple[ChatModel, list[dict[str, str]]]]) -> list[str]:
        """Send conversations, batched per model; replies in request order."""
        by_model: dict[int, list[int]] = defaultdict(list)
        for index, (model, _) in enumerate(requests):
            by_model[id(model)].append(index)
        replies = [""] * len(requests)
        for indices in by_model.values():
            model = requests[indices[0]][0]
            answers = model.chat([requests[i][1] for i in indices], self._params())
            for i, answer in zip(indices, answers):
                replies[i] = answer[0] if answer else ""
        self._stats["calls"] += len(requests)
        return replies

    def _opening(self, agent: AgentSpec, prompt: str, answer: str) -> list[dict[str, str]]:
        value = self.context.value
        nonce = call_key(clean(prompt, "request"), clean(answer))[:8]
        system = f"{rubric_system(value)}\n\nYou are {agent.name}, one of several judges. {agent.persona}"
        user = (
            f"User request:\n{fence(prompt, 'request', nonce)}\n\n"
            f"Answer to judge:\n{fence(answer, 'answer', nonce)}\n\n"
            f"Argue in at most three sentences, from your perspective, how well the answer advances {value.title}; "
            f"then end with `Score: N`, N an integer from {value.score_min} to {value.score_max}."
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _rebuttal(self, me: int, arguments: list[str], scores: list[float | None], nonce: str) -> str:
        """The other agents' scores and (fenced) arguments, for agent `me` (-1: all, for the mediator)."""
        others = "\n\n".join(
            f"{self.agents[k].name} (score {'none' if scores[k] is None else format(scores[k], 'g')}):\n"
            f"{fence(arguments[k], 'argument', nonce + str(k))}"
            for k in range(len(self.agents))
            if k != me
        )
        if me < 0:
            return f"The judges argued:\n{others}\n\nWeigh their arguments and give the final verdict: `Score: N`."
        return (
            f"The other judges argued:\n{others}\n\nWeigh their arguments from your perspective. Keep or revise "
            "your score; answer in at most three sentences and end with `Score: N`."
        )

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """Negotiate a score for each completion; None where no agent gave a valid score."""
        value = self.context.value
        low, high = value.score_min, value.score_max
        asked = [prompt_text(p) for p in prompts]
        answers = [completion_text(c) for c in completions]
        models = [self._model(agent.model, "model") for agent in self.agents]
        talks = [[self._opening(agent, p, a) for agent in self.agents] for p, a in zip(asked, answers)]
        scores: list[list[float | None]] = [[None] * len(self.agents) for _ in answers]
        arguments = [[""] * len(self.agents) for _ in answers]
        used, agreed = [0] * len(answers), [False] * len(answers)
        active = list(range(len(answers)))
        for round_number in range(1, self.options.rounds + 1):
            pending = [(c, k) for c in active for k in range(len(self.agents))]
            replies = self._ask([(models[k], talks[c][k]) for c, k in pending])
            for (c, k), reply in zip(pending, replies):
                score = parse_score(reply, low, high)
                self._stats["statements"] += 1
                self._stats["invalid_statements"] += score is None
                arguments[c][k] = reply
                talks[c][k] = [*talks[c][k], {"role": "assistant", "content": reply}]
                if score is not None:
                    scores[c][k] = score
            for c in active:
                used[c] = round_number
                valid = [s for s in scores[c] if s is not None]
                agreed[c] = len(valid) == len(self.agents) and max(valid) - min(valid) <= self.options.tolerance
            active = [c for c in active if not agreed[c]]
            if round_number < self.options.rounds:
                for c in active:
                    nonce = call_key(clean(asked[c], "request"), clean(answers[c]), round_number)[:8]
                    for k in range(len(self.agents)):
                        rebuttal = self._rebuttal(k, arguments[c], scores[c], nonce)
                        talks[c][k] = [*talks[c][k], {"role": "user", "content": rebuttal}]
        rewards = self._consensus(asked, answers, scores, arguments)
        self._record(asked, answers, scores, used, agreed, rewards, arguments)
        return rewards

    def _consensus(
        self, asked: list[str], answers: list[str], scores: list[list[float | None]], arguments: list[list[str]]
    ) -> list[float | None]:
        value = self.context.value
        finals = [[s for s in row if s is not None] for row in scores]
        if self.options.consensus != "mediator":
            pick = statistics.fmean if self.options.consensus == "mean" else statistics.median
            return [float(pick(row)) if row else None for row in finals]
        mediator = self._model(self.options.mediator, "mediator")
        conversations = []
        for c in range(len(answers)):
            nonce = call_key(clean(asked[c], "request"), clean(answers[c]), "mediator")[:8]
            mediator_spec = AgentSpec(name="the mediator", persona="You settle the judges' disagreement fairly.")
            talk = self._opening(mediator_spec, asked[c], answers[c])
            talk[-1]["content"] += "\n\n" + self._rebuttal(-1, arguments[c], scores[c], nonce)
            conversations.append(talk)
        replies = self._ask([(mediator, convo) for convo in conversations])
        return [parse_score(reply, value.score_min, value.score_max) for reply in replies]

    def _record(
        self,
        asked: list[str],
        answers: list[str],
        scores: list[list[float | None]],
        used: list[int],
        agreed: list[bool],
        rewards: list[float | None],
        arguments: list[list[str]],
    ) -> None:
        """Per candidate: a line in the run's negotiation.jsonl, the metrics, the failure budget."""
        run = RunDirectory(self.context.run_dir) if self.context.run_dir is not None else None
        for c, reward in enumerate(rewards):
            row = {
                "prompt": call_key(asked[c]),
                "candidate": call_key(answers[c]),
                "rounds": used[c],
                "agreed": agreed[c],
                "scores": {agent.name: scores[c][k] for k, agent in enumerate(self.agents)},
                "reward": reward,
                "consensus": self.options.consensus,
            }
            if run is not None:
                run.append_jsonl(RECORD_FILE, row)
            self._stats["candidates"] += 1
            self._stats["rounds"] += used[c]
            self._stats["agreed"] += agreed[c]
            self._stats["unscored"] += reward is None
            for agent, score in row["scores"].items():
                if score is not None:
                    self._finals[agent].append(score)
            self.budget.record(reward is not None, arguments[c][0])

    def pop_metrics(self) -> dict[str, float]:
        """Since the last call: mean rounds used, agreement and invalid rates, calls per candidate,
        each agent's mean final score; then reset."""
        s = self._stats
        n = s["candidates"] or 1
        metrics = {
            "rounds_mean": s["rounds"] / n,
            "agreement_rate": s["agreed"] / n,
            UNSCORABLE_RATE: s["unscored"] / n,
            INVALID_RATE: s["invalid_statements"] / s["statements"] if s["statements"] else 0.0,
            "calls_per_candidate": s["calls"] / n,
        }
        metrics.update({f"score/{a}": sum(v) / len(v) for a, v in self._finals.items() if v})
        self._stats, self._finals = Counter(), defaultdict(list)
        return metrics
