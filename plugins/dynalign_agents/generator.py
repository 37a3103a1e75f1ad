"""Prompt generator `agents`: LLM agents write the value's training and held-out prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from dynalign.api import (
    ChatModel,
    ConfigError,
    ModelRef,
    Options,
    PromptGenerator,
    PromptRecord,
    PromptSet,
    ValueSpec,
    ValueSpecError,
)
from dynalign_agents.templates import ROLES, check_template, pick_templates

WORK = "work"


class AgentsOptions(Options):
    """Options of the `agents` prompt generator."""

    n: int = Field(64, ge=1, description="Prompts to make in total (training + held out).")
    held_out: int = Field(16, ge=0, description="How many of them to hold out for evaluation.")
    seed: int | None = Field(None, description="Seed of scheduling, sampling and the split; default: the run's.")
    model: ModelRef = Field(default_factory=ModelRef, description="Backend of every role not set on its own.")
    goal: ModelRef | None = Field(None, description="Backend of the goal agent (default: `model`).")
    task: ModelRef | None = Field(None, description="Backend of the task agent (default: `model`).")
    critic: ModelRef | None = Field(None, description="Backend of the critic agent (default: `model`).")
    refiner: ModelRef | None = Field(None, description="Backend of the refiner agent (default: `model`).")
    templates: dict[str, str] = Field(default_factory=dict, description="Template by role (goal/task/critic/refiner).")
    goals_per_call: int = Field(3, ge=1, description="Goals the goal agent is asked for per call.")
    tasks_per_goal: int = Field(2, ge=1, description="Task prompts written per goal.")
    calls_per_wave: int = Field(8, ge=1, description="Goal-agent calls per wave; each role's requests go together.")
    min_score: float = Field(4.0, ge=1, le=5, description="Critic score (1-5) a prompt needs to be accepted.")
    critic_probs: bool = Field(True, description="Score from digit probabilities when the critic's reply has none.")
    max_refinements: int = Field(2, ge=0, description="Refiner rounds for a declined prompt before it is dropped.")
    rouge_threshold: float = Field(0.7, gt=0, le=1, description="Reject at this ROUGE-L vs any accepted prompt.")
    min_words: int = Field(6, ge=1)
    max_words: int = Field(150, ge=1)
    max_new_tokens: int = Field(200, ge=8)
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    failure_budget: int = Field(20, ge=1, description="Stop after this many empty model outputs in a row.")
    stall_waves: int = Field(10, ge=1, description="Stop after this many waves without an accepted prompt.")
    emphasis: dict[str, float] = Field(default_factory=dict, description="Pillar -> weight for choosing goals.")
    progress: bool = Field(True, description="Show a progress bar.")

    @field_validator("templates")
    @classmethod
    def _templates_have_placeholders(cls, templates: dict[str, str]) -> dict[str, str]:
        for role, text in templates.items():
            try:
                check_template(role, text, f"templates.{role}")
            except ConfigError as exc:  # pydantic reports ValueErrors with the option's location
                raise ValueError(str(exc)) from None
        return templates

    @field_validator("emphasis")
    @classmethod
    def _weights_are_positive(cls, emphasis: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in emphasis.values()) or (emphasis and not any(emphasis.values())):
            raise ValueError("emphasis weights must be >= 0 with at least one above 0")
        return emphasis

    @model_validator(mode="after")
    def _held_out_fits(self) -> AgentsOptions:
        if self.held_out >= self.n:
            raise ValueError(f"held_out ({self.held_out}) must be smaller than n ({self.n})")
        if self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        return self


class AgentsPromptGenerator(PromptGenerator):
    """Multi-agent prompts: goals, tasks, critique and refinement, filtered for diversity."""

    name = "agents"
    aliases = ("multi-agent",)
    Options = AgentsOptions
    options: AgentsOptions

    def generate(self, value: ValueSpec) -> PromptSet:
        """Make the prompt set; inside a run, work state lives in run_dir/prompt_generation."""
        folder = None
        if self.context is not None and self.context.run_dir is not None:
            folder = Path(self.context.run_dir) / "prompt_generation"
        return self.generate_to(value, folder)

    def refresh(
        self, value: ValueSpec, previous: list[PromptRecord], weakness: dict[str, float], round_index: int
    ) -> list[PromptRecord]:
        """A new training set as large as the last, with goals weighted toward weak pillars.

        Each pillar's weight is 1 + 3 x its weakness (0 = best pillar), so no pillar vanishes;
        without pillar diagnostics the configured `emphasis` stays in force.
        """
        emphasis = {pillar: 1.0 + 3.0 * w for pillar, w in weakness.items()} or self.options.emphasis
        options = self.options.model_copy(
            update={"emphasis": emphasis, "n": max(len(previous), 2), "held_out": 0, "seed": self.seed() + round_index}
        )
        folder = None
        if self.context is not None and self.context.run_dir is not None:
            folder = Path(self.context.run_dir) / "prompt_generation" / f"round-{round_index}"
        return AgentsPromptGenerator(options, self.context).generate_to(value, folder).train

    def seed(self) -> int:
        """The seed in force: the option, else the run's."""
        if self.options.seed is not None:
            return self.options.seed
        return self.context.seed if self.context is not None else 0

    def build_agents(self, folder: Path | None) -> dict[str, Any]:
        """One cached Agent per role (roles with the same backend settings share one model)."""
        from dynalign.api import CallCache
        from dynalign_agents.cache import Agent, empty_output_budget

        if self.context is None:
            raise ConfigError("the agents generator needs a run context to build its model backends")
        cache = CallCache(folder / WORK / "cache.jsonl" if folder is not None else None)
        budget = empty_output_budget(self.options.failure_budget)
        built: dict[str, ChatModel] = {}
        agents = {}
        for role in ROLES:
            ref = getattr(self.options, role) or self.options.model
            where = f"prompts.options.{role if getattr(self.options, role) else 'model'}"
            key = ref.model_dump_json()
            if key not in built:
                built[key] = self.context.build_model(ref, where=where)
            agents[role] = Agent(role, built[key], cache, budget)
        return agents

    def generate_to(self, value: ValueSpec, folder: Path | None) -> PromptSet:
        """Run the agents (replaying cached answers in `folder/work`), then write the set to `folder`."""
        from dynalign_agents.cache import EmptyOutputError
        from dynalign_agents.output import split, write_prompt_set
        from dynalign_agents.pipeline import Pipeline

        opts = self.options
        if not value.seed_themes:
            raise ValueSpecError(f"value {value.name!r} has no seed_themes; add some to its value file for the agents")
        unknown = sorted(set(opts.emphasis) - set(value.pillar_names))
        if unknown:
            raise ConfigError(
                f"prompts.options.emphasis: {unknown[0]!r} is not a pillar of {value.name!r}; "
                f"pillars are {', '.join(value.pillar_names)}"
            )
        templates = pick_templates(opts.templates, value.templates, value.name)
        agents = self.build_agents(folder)
        if folder is not None:
            (folder / WORK).mkdir(parents=True, exist_ok=True)
        pipeline = Pipeline(
            value,
            opts,
            agents,
            templates,
            self.seed(),
            folder / WORK / "accepted.jsonl" if folder is not None else None,
        )
        bar = _progress_bar(opts.n) if opts.progress else None
        try:
            rows = pipeline.run(bar)
        except EmptyOutputError as exc:
            kept = f"; {len(pipeline.accepted)} accepted prompts kept in {folder / WORK}" if folder else ""
            raise EmptyOutputError(f"{exc}{kept}") from exc
        finally:
            if bar is not None:
                bar.close()
        prompts = split(rows, opts.held_out, self.seed())
        summary = {
            "value": value.name,
            "accepted": len(rows),
            "train": len(prompts.train),
            "held_out": len(prompts.held_out),
            "rejections": dict(sorted(pipeline.filter.rejections.items())),
            "counts": dict(sorted(pipeline.progress.counts.items())),
            "models": pipeline.models,
            "calls": {role: a.calls for role, a in agents.items()},
            "reused_answers": {role: a.reused for role, a in agents.items()},
            "rouge_exact_checks": pipeline.filter.rouge.exact_checks,
        }
        self.last_summary = summary
        if folder is not None:
            write_prompt_set(folder, prompts, summary)
        return prompts


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="prompts accepted", unit="prompt", dynamic_ncols=True)
