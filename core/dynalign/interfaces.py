"""The interfaces of the plugin kinds (model, prompt generator, rewarder, optimizer, stage)
and the `RunContext` every component receives.

(The value kind is plain data: `dynalign.values.ValueSpec`.) Each implementation is a
subclass with a short kebab-case `name` and a pydantic `Options` model that forbids unknown
keys; the core validates a config's `options` table against it before constructing it.
Modules defining components must not import torch at module level: `dynalign plugins` loads
them all and must stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dynalign.config import ModelRef, validation_message
from dynalign.errors import ConfigError, UnsupportedError

if TYPE_CHECKING:
    from dynalign.registry import Registry
    from dynalign.values import ValueSpec

Message = dict[str, str]
Conversation = list[Message]


def with_system(conversation: Conversation, system: str | None) -> Conversation:
    """The conversation with its system message replaced by `system` (removed if None)."""
    rest = [m for m in conversation if m.get("role") != "system"]
    return ([{"role": "system", "content": system}] if system is not None else []) + rest


def _is_message(m: Any) -> bool:
    return isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)


def as_conversation(item: str | Conversation, role: str) -> Conversation:
    """A prompt (`role="user"`) or completion (`role="assistant"`) in the form rewarders
    receive: a string becomes one message; a list of `{"role", "content"}` messages is
    checked and kept. Raises ValueError saying what is wrong."""
    if isinstance(item, str):
        return [{"role": role, "content": item}]
    if isinstance(item, list) and item and all(_is_message(m) for m in item):
        return item
    raise ValueError('must be a string or a non-empty list of {"role": ..., "content": ...} messages with text content')


class Options(BaseModel):
    """Base of every component's options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass
class RunContext:
    """What a component may use of the run it belongs to: the value, the registry, the run
    directory (if any), the seed, where the config came from, and `say`, where a component
    reports a decision the user should see (one line)."""

    value: ValueSpec
    registry: Registry
    run_dir: Path | None = None
    seed: int = 0
    source: str = "config"
    say: Callable[[str], None] = field(default=print, repr=False)

    def build(self, kind: str, name: str, options: dict[str, Any], where: str) -> Component:
        """Construct a component by kind and name, validating `options` (error at `where`)."""
        cls = self.registry.get(kind, name).obj
        try:
            parsed = cls.Options.model_validate(options)
        except ValidationError as exc:
            raise ConfigError(validation_message(self.source, exc, prefix=where, environ=os.environ)) from exc
        return cls(parsed, self)

    def build_model(self, ref: ModelRef | dict[str, Any], where: str = "model") -> ChatModel:
        """Construct a model backend from a `{backend, options}` reference."""
        ref = ref if isinstance(ref, ModelRef) else ModelRef.model_validate(ref)
        return self.build("model", ref.backend, ref.options, f"{where}.options")  # type: ignore[return-value]


class Component:
    """Common base: a registered name, aliases, an `Options` model and the run context."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options | None = None, context: RunContext | None = None) -> None:
        self.options = options if options is not None else type(self).Options()
        self.context = context


class GenerationParams(Options):
    """Sampling settings for one `ChatModel.chat` call."""

    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n: int = Field(1, ge=1)
    seed: int | None = None


class ChatModel(Component):
    """A chat backend: turns conversations into text, and where it can, token probabilities."""

    kind = "model"
    supports_token_probs: ClassVar[bool] = False

    def chat(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        """Answer each conversation with `params.n` samples; returns one list per conversation."""
        raise NotImplementedError

    def next_token_probs(
        self, conversations: Sequence[Conversation], choices: Sequence[str], assistant_prefix: str = ""
    ) -> list[dict[str, float]]:
        """For each conversation, the probability that the assistant's reply, after
        `assistant_prefix`, continues with each of `choices` (single-token strings)."""
        raise UnsupportedError(f"model backend {self.name!r} cannot return token probabilities")

    def completion_logprobs(
        self, conversations: Sequence[Conversation], completions: Sequence[str]
    ) -> list[list[float]]:
        """For each conversation, the log-probability of each token of its completion as the
        assistant's reply (teacher-forced): the basis of likelihood-based signals and metrics."""
        raise UnsupportedError(f"model backend {self.name!r} cannot score completions token by token")

    def describe(self) -> dict[str, Any]:
        """What to record about this backend in results (model id, revision, endpoint)."""
        return {"backend": self.name}

    def preflight(self) -> None:
        """Cheap checks of what the backend needs from its environment (an API key variable),
        run by `config check` and before a run or `score` starts; raise a DynalignError."""

    def fingerprint(self) -> str | None:
        """The identity of the weights that answer (e.g. a local folder's files), for caching
        measurements of an unchanged model (`dynalign.measured`); None: not known, never cached."""
        return None


@runtime_checkable
class TrainablePolicy(Protocol):
    """A backend whose weights an optimizer can train: it resolves to a local HF folder."""

    def pretrained_path(self) -> str:
        """A local folder loadable by `AutoModelForCausalLM.from_pretrained`."""
        ...

    def policy_handle(
        self,
        model: Any = None,
        tokenizer: Any = None,
        reference: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> PolicyHandle:
        """A PolicyHandle on `model` (an optimizer's live model; default: this backend's own
        loaded weights), whose `reference=True` computes under the `reference()` context."""
        ...


class PromptRecord(BaseModel):
    """One task prompt with its provenance (goal, pillar, critic score, ...)."""

    model_config = ConfigDict(extra="allow")

    id: str
    prompt: str = Field(min_length=1)
    pillar: str | None = None


class PromptSet(BaseModel):
    """A prompt dataset split into training and held-out prompts (disjoint)."""

    train: list[PromptRecord]
    held_out: list[PromptRecord] = []


class PromptGenerator(Component):
    """Makes the prompt dataset for a value."""

    kind = "prompt_generator"

    def generate(self, value: ValueSpec) -> PromptSet:
        """Return the training and held-out prompts for `value`."""
        raise NotImplementedError

    def refresh(
        self, value: ValueSpec, previous: list[PromptRecord], weakness: dict[str, float], round_index: int
    ) -> list[PromptRecord]:
        """Training prompts for round `round_index` (> 0) when the config asks for a refresh.

        `weakness` maps each pillar to how much the policy lagged on it last round (0..1,
        higher = weaker), from the rewarders' per-pillar diagnostics; a generator may use it
        to emphasise those pillars. Default: keep the previous round's prompts.
        """
        return previous


class PolicyHandle:
    """What a rewarder may use of the policy being trained, without touching its library.

    The model plugin that holds the weights implements it (the `hf` backend does), so a
    rewarder depends on this interface only. With `reference=True` every method computes with
    the initial policy (LoRA adapters disabled, or the round's starting weights) instead of the
    live one: a frozen judge, or the reference of a contrast.
    """

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams, *, reference: bool = False
    ) -> list[list[str]]:
        """`params.n` answers per conversation (greedy at temperature 0)."""
        raise NotImplementedError

    def next_token_probs(
        self,
        conversations: Sequence[Conversation],
        choices: Sequence[str],
        assistant_prefix: str = "",
        *,
        reference: bool = False,
    ) -> list[dict[str, float]]:
        """Like `ChatModel.next_token_probs`, on the live (or reference) policy."""
        raise NotImplementedError

    def completion_logprobs(
        self,
        conversations: Sequence[Conversation],
        completions: Sequence[str | Sequence[int]],
        *,
        reference: bool = False,
    ) -> list[list[float]]:
        """Like `ChatModel.completion_logprobs`; a completion may also be given as token ids."""
        raise NotImplementedError

    def fingerprint(self) -> str | None:
        """The identity of the initial (reference) weights, as `ChatModel.fingerprint`; None:
        not known, so measurements of this policy are never cached."""
        return None

    def release(self) -> None:
        """Let go of the model after training, so its memory is freed before evaluation; a
        released handle must not be used again. Default: nothing to release."""

    def shared_prefill(self) -> AbstractContextManager[None]:
        """While entered, the live model's own `generate` (as an optimizer's library calls it)
        prefills each distinct prompt of a batch once; a backend without such a fast path
        changes nothing (the default)."""
        return nullcontext()


class Rewarder(Component):
    """Scores completions; follows TRL's reward-function contract.

    `__call__(prompts, completions, **columns)` returns one float per completion, or None
    where the completion could not be scored (TRL then leaves it out of the group baseline).
    Prompts and completions are always conversational: each prompt is a list of
    `{"role", "content"}` messages (the value's system prompt first when training with it),
    each completion a list holding the assistant's message, so `completion[-1]["content"]`
    is its text. Callers normalise plain strings with `as_conversation` before a rewarder
    sees them.
    """

    kind = "rewarder"
    needs_policy: ClassVar[bool] = False  # True: scores with the policy, given through bind_policy

    def __init__(self, options: Options | None = None, context: RunContext | None = None) -> None:
        super().__init__(options, context)
        self.__name__ = self.name  # TRL names reward columns after the function's __name__

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        """Score each completion of its prompt."""
        raise NotImplementedError

    def bind_policy(self, policy: PolicyHandle) -> None:
        """Called by the optimizer before training with the live policy. Default: ignore it."""

    def signal_variants(self) -> dict[str, Rewarder]:
        """The signals this rewarder could use, by name, as rewarders of their own: what
        `judge-check` measures on the value's calibration pairs. Default: none to compare."""
        return {}

    def pop_metrics(self) -> dict[str, float]:
        """Diagnostics since the last call under bare keys (`unscorable_rate`, `pillar/<Name>`; the
        logger adds `<name>/`; the keys are defined in `dynalign.rewards`); then reset."""
        return {}


@dataclass
class WeightedRewarder:
    """A rewarder with the weight its scores get in the total reward."""

    rewarder: Rewarder
    weight: float = 1.0


@dataclass
class TrainRequest:
    """Everything an optimizer needs for one round of training."""

    policy: ChatModel
    prompts: list[PromptRecord]
    rewarders: list[WeightedRewarder]
    value: ValueSpec
    output_dir: Path
    round_index: int
    resume: bool
    on_metrics: Callable[[dict[str, Any]], None]
    on_rewind: Callable[[int], None] = lambda step: None  # drop this round's metrics after `step`
    on_time: Callable[[str, float], None] = lambda name, seconds: None  # wall time of a phase of the round
    seed: int = 0


@dataclass
class TrainResult:
    """Where the round's final policy was written and how many optimizer steps it took."""

    model_dir: Path
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)


class Optimizer(Component):
    """Turns prompts and rewarders into an updated policy."""

    kind = "optimizer"

    def check(self, policy: ChatModel, value: ValueSpec) -> None:
        """Validate settings that only the backend library can judge, without training."""

    def train(self, request: TrainRequest) -> TrainResult:
        """Run one round of training and return the trained policy's location."""
        raise NotImplementedError


class Stage(Component):
    """A step `dynalign run` takes after training (evaluation, report), in config order."""

    kind = "stage"
    before_training: ClassVar[bool] = False  # True: runs after the prompts, before round 1

    def run(self, stack: Any, run_dir: Any, say: Callable[[str], None]) -> None:
        """Do the stage's work for a finished run (`stack`: dynalign.stack.Stack;
        `run_dir`: dynalign.rundir.RunDirectory), writing results into the run directory."""
        raise NotImplementedError


COMPONENT_BASES: dict[str, type[Component]] = {
    "model": ChatModel,
    "prompt_generator": PromptGenerator,
    "rewarder": Rewarder,
    "optimizer": Optimizer,
    "stage": Stage,
}
