"""The hf implementation of `PolicyHandle`: a loaded model and tokenizer, plus a context
under which the model computes as the reference (initial) policy."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from dynalign.api import Conversation, DynalignError, GenerationParams, PolicyHandle
from dynalign_hf.prefix_store import PrefixStore

if TYPE_CHECKING:
    from dynalign_hf.skinny import Products

REMEMBERED = 4  # reference log-probability results kept


class HFPolicyHandle(PolicyHandle):
    """A live HF model (e.g. the one GRPO trains) as rewarders may use it."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        reference: Callable[[], AbstractContextManager[Any]] | None = None,
        batch_size: int = 8,
        identity: str | None = None,
        *,
        generation_batch_size: int | None = None,
        decode_products: Products = "auto",
    ) -> None:
        self.model = model
        self.identity = identity
        self.tokenizer = tokenizer
        self.reference = reference or (lambda: nullcontext(model))
        self.batch_size = batch_size
        self.generation_batch_size = generation_batch_size or batch_size
        self.decode_products: Products = decode_products
        self._reference_logprobs: OrderedDict[str, list[list[float]]] = OrderedDict()
        # the reference never changes, so its prefix caches (a system prompt, a rubric) outlive a call
        self._reference_prefixes = PrefixStore()

    @contextmanager
    def _model(self, reference: bool) -> Any:
        if self.model is None:
            raise DynalignError("this policy handle was released after training; bind a new one to score")
        if reference:
            with self.reference() as model:
                yield model
        else:
            yield self.model

    @contextmanager
    def _scoring(self, reference: bool) -> Iterator[Any]:
        """The model for a no-grad scoring call: the live policy's LoRA adapters merged into its
        weights for the call (`dynalign_hf.merged`; a self-judged GRPO step's scoring took 0.84x
        the adapters' own forward, the merge included: BENCHMARKS.md, issue 20 round 11); the
        reference, whose adapters are disabled, as it is."""
        from dynalign_hf.merged import merged_adapters

        with self._model(reference) as model, merged_adapters(model):
            yield model

    def _prefixes(self, reference: bool) -> PrefixStore | None:
        """Where prefix caches are kept across calls: for the reference only (the live model trains)."""
        return self._reference_prefixes if reference else None

    def fingerprint(self) -> str | None:
        """The initial weights' identity, as the backend that made this handle knows it."""
        return self.identity

    def release(self) -> None:
        """Drop the model, its reference and remembered results (rewarders keep the handle)."""
        self.model = self.reference = None
        self._reference_logprobs.clear()
        self._reference_prefixes.clear()

    @contextmanager
    def shared_prefill(self) -> Iterator[None]:
        """The live model's `generate` prefills each distinct prompt once while entered."""
        from dynalign_hf.sampling import generate_shared

        target = self.model
        plain = target.generate

        def shared(input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> Any:
            if input_ids is None or attention_mask is None:  # not a batch of token rows: nothing to share
                return plain(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            products = self.decode_products
            return generate_shared(target, input_ids, attention_mask, generate=plain, products=products, **kwargs)

        target.generate = shared
        try:
            yield
        finally:
            del target.generate  # the class's own method shows through again

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams, *, reference: bool = False
    ) -> list[list[str]]:
        """`params.n` answers per conversation."""
        from dynalign_hf.textgen import generate

        with self._model(reference) as model:
            return generate(
                model, self.tokenizer, conversations, params, self.generation_batch_size, products=self.decode_products
            )

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
        with self._scoring(reference) as model:
            return next_token_probs(model, self.tokenizer, texts, choices, self.batch_size, self._prefixes(reference))

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
        # The reference never changes, so a request repeated soon after (the two aggregations of
        # one contrast, measured one after the other) is answered from the last few results.
        key = json.dumps([texts, [c if isinstance(c, str) else list(c) for c in completions]]) if reference else ""
        if key in self._reference_logprobs:
            return self._reference_logprobs[key]
        with self._scoring(reference) as model:
            result = completion_logprobs(
                model, self.tokenizer, texts, completions, self.batch_size, self._prefixes(reference)
            )
        if reference:
            self._reference_logprobs[key] = result
            while len(self._reference_logprobs) > REMEMBERED:
                self._reference_logprobs.popitem(last=False)
        return result

    def completion_topk(
        self,
        conversations: Sequence[Conversation],
        completions: Sequence[str | Sequence[int]],
        k: int,
        *,
        reference: bool = False,
    ) -> list[tuple[list[list[int]], list[list[float]]]]:
        """At each completion position, the k most likely next tokens and their log-probabilities
        (what a distribution-level distillation term needs of a teacher)."""
        from dynalign_hf.textgen import completion_topk, render

        texts = [render(self.tokenizer, c) for c in conversations]
        with self._scoring(reference) as model:
            return completion_topk(
                model, self.tokenizer, texts, completions, k, self.batch_size, self._prefixes(reference)
            )
