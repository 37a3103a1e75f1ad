"""The self-signals a policy can give about its own candidates.

- `probability_scores`: the expected 0-5 score read from the judge's next-token distribution.
- `verdict_scores`: a short written judgment, parsed for its last well-formed score.
- `contrast_scores`: the value-context log-likelihood ratio

      contrast(x, y) = sum_t [log pi_ref(y_t | value system prompt, x, y_<t) - log pi_ref(y_t | c, x, y_<t)]

  where c is the contrast context (the template's default system prompt, an empty one, or a
  counter prompt). With a KL penalty of weight 1 to pi_ref, the policy maximising it is the
  system-prompted reference itself (context distillation); `mean` divides by the length.
"""

from __future__ import annotations

from collections.abc import Sequence

from dynalign.api import (
    SCORE_PREFIX,
    Conversation,
    GenerationParams,
    PolicyHandle,
    ValueSpec,
    expected_score,
    parse_score,
    score_choices,
    with_system,
)


def probability_scores(
    handle: PolicyHandle, value: ValueSpec, conversations: list[Conversation], reference: bool
) -> list[float | None]:
    """Expected score over the rubric's digits after `Score: `."""
    choices = score_choices(value.score_min, value.score_max)
    probs = handle.next_token_probs(conversations, choices, SCORE_PREFIX, reference=reference)
    return [expected_score(p) for p in probs]


def verdict_scores(
    handle: PolicyHandle, value: ValueSpec, conversations: list[Conversation], max_new_tokens: int, reference: bool
) -> list[float | None]:
    """The last well-formed `Score: N` of a greedy written verdict (None if there is none)."""
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    verdicts = handle.chat(conversations, params, reference=reference)
    return [parse_score(v[0], value.score_min, value.score_max) for v in verdicts]


def contrast_context(kind: str, counter_prompt: str | None) -> str | None:
    """The system message of the contrast context (None: the chat template's default)."""
    if kind == "default":
        return None
    if kind == "empty":
        return ""
    return counter_prompt


def contrast_scores(
    handle: PolicyHandle,
    system_prompt: str,
    prompts: Sequence[Conversation],
    completions: Sequence[str | Sequence[int]],
    *,
    against: str | None,
    aggregation: str,
    reference: bool,
) -> list[float]:
    """Per completion: summed (or per-token mean) log-likelihood ratio of the completion with
    the value's system prompt against the contrast context `against`."""
    with_value = [with_system(p, system_prompt) for p in prompts]
    contrasted = [with_system(p, against) for p in prompts]
    valued = handle.completion_logprobs(with_value, completions, reference=reference)
    bare = handle.completion_logprobs(contrasted, completions, reference=reference)
    scores = []
    for v, b in zip(valued, bare):
        total = sum(v) - sum(b)
        scores.append(total / len(v) if aggregation == "mean" and v else total)
    return scores
