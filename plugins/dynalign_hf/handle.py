"""The hf implementation of `PolicyHandle`: a loaded model and tokenizer, plus a context
under which the model computes as the reference (initial) policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from dynalign.interfaces import Conversation, GenerationParams, PolicyHandle


class HFPolicyHandle(PolicyHandle):
    """A live HF model (e.g. the one GRPO trains) as rewarders may use it."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        reference: Callable[[], AbstractContextManager[Any]] | None = None,
        batch_size: int = 8,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.reference = reference or (lambda: nullcontext(model))
        self.batch_size = batch_size

    @contextmanager
    def _model(self, reference: bool) -> Any:
        if reference:
            with self.reference() as model:
                yield model
        else:
            yield self.model

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams, *, reference: bool = False
    ) -> list[list[str]]:
        """`params.n` answers per conversation."""
        from dynalign_hf.textgen import generate

        with self._model(reference) as model:
            return generate(model, self.tokenizer, conversations, params, self.batch_size)

    def next_token_probs(
        self,
        conversations: Sequence[Conversation],
        choices: Sequence[str],
        assistant_prefix: str = "",
        *,
        reference: bool = False,
    ) -> list[dict[str, float]]:
        """Probability of each single-token choice right after `assistant_prefix`."""
        from dynalign_hf.textgen import next_token_probs, render

        texts = [render(self.tokenizer, c, assistant_prefix) for c in conversations]
        with self._model(reference) as model:
            return next_token_probs(model, self.tokenizer, texts, choices, self.batch_size)

    def completion_logprobs(
        self,
        conversations: Sequence[Conversation],
        completions: Sequence[str | Sequence[int]],
        *,
        reference: bool = False,
    ) -> list[list[float]]:
        """Per-token log-probabilities of each completion as the assistant's reply."""
        from dynalign_hf.textgen import completion_logprobs, render

        texts = [render(self.tokenizer, c) for c in conversations]
        with self._model(reference) as model:
            return completion_logprobs(model, self.tokenizer, texts, completions, self.batch_size)
