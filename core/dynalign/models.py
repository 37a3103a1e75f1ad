"""Model backends as plugins see them: a `ChatModel` turns conversations into text (and, where
it can, token probabilities); a `TrainablePolicy` is one whose weights an optimizer can train;
a `PolicyHandle` is what a rewarder may use of the policy being trained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import Field

from dynalign.components import Component, Options
from dynalign.errors import UnsupportedError
from dynalign.messages import Conversation

DEFAULT_POLICY = "embedded:smollm2-135m-instruct"
"""The model the default stack trains (the `hf` backend's default)."""


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

    def completion_topk(
        self,
        conversations: Sequence[Conversation],
        completions: Sequence[str | Sequence[int]],
        k: int,
        *,
        reference: bool = False,
    ) -> list[tuple[list[list[int]], list[list[float]]]]:
        """Per completion, at each of its positions: the k most likely next tokens and their
        log-probabilities (what a distribution-level distillation term asks of a teacher).
        Default: this backend cannot give them."""
        raise UnsupportedError("this policy backend cannot give top-k log-probabilities (use 'hf')")

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
