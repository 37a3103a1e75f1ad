"""GRPOTrainer with the value's system prompt in generation but not in the loss sequence.

TRL's `_generate(prompts)` is the smallest override point (hence the pinned TRL minor
version): we generate from `[system] + prompt`, then hand back the token ids of the prompt
*without* the value's system prompt, so log-probabilities, the loss and the KL are computed
in the context a deployed model sees. The update is then off-policy with respect to that
context; `context_correction` reweights each completion's advantage by the truncated
sequence ratio pi(y | x) / pi(y | system, x).

`context_distillation` (a weight, 0 = off) adds a per-token term to each completion token's
advantage: log pi_initial(y_t | system, x, y_<t) - log pi(y_t | x, y_<t), how much likelier the
value-prompted initial policy finds the token than the current policy does without the prompt.
The sequence-level scores say which answer was better; this dense term says which tokens carry
the value, and it fades as the weights learn what the prompt did (on-policy context
distillation; TRL accepts (batch, tokens) advantages from subclasses; where it may, the live
policy's side comes from the loss's own forward pass, `dynalign_grpo.credit`, which runs each
distinct prompt once, `dynalign_grpo.shared_prompt`). The teacher is the
initial policy in the run's teacher context (`teacher_system_prompt`: the value's system prompt,
or it plus exemplar answers), which may be longer than the prompt generation sees.

`distillation_topk` (k, 0 = off) adds a loss term beside it: the KL from the teacher's top-k
next-token distribution to the policy's at every completion token (`dynalign_grpo.topk`), a
lower-variance signal than the sampled token alone; it costs one more forward and backward pass
of the policy per step.

With vLLM generation, TRL corrects the sampler's mismatch by the ratio of the trainer's
log-probabilities of each completion to the sampler's. The sampler saw the value's system
prompt and TRL's trainer pass does not, so that ratio would be the context ratio
pi(y | x) / pi_vllm(y | system, x), masked or truncated, silently reweighting (mostly dropping)
the completions the value prompt made likely. Here the trainer side is taken in the sampler's
context, pi(y | system, x) / pi_vllm(y | system, x): only the engines' mismatch is corrected, and
the context is left to `context_correction`, as without vLLM.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from typing import Any

import torch
from trl import GRPOTrainer

from dynalign.api import DynalignError, with_system
from dynalign_grpo.credit import INITIAL, TEACHER, LossPassCredit, credit_in_loss_pass
from dynalign_grpo.options import GRPOOptions
from dynalign_grpo.shared_prompt import SharedPromptLoss, tail_forward
from dynalign_grpo.topk import topk_distillation_loss
from dynalign_grpo.vllm_sync import sync_by_reload_on_cpu


class ValueContextGRPOTrainer(LossPassCredit, SharedPromptLoss, GRPOTrainer):
    """Generates with the value's system prompt; computes the loss without it (if excluded)."""

    def __init__(
        self,
        *args: Any,
        options: GRPOOptions,
        value_system_prompt: str,
        teacher_system_prompt: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.use_vllm:
            sync_by_reload_on_cpu(self.vllm_generation, on_gpu=torch.cuda.is_available())
        self.options = options  # validated once, by GRPOOptions; read as given
        self.value_system_prompt = value_system_prompt
        self.teacher_system_prompt = value_system_prompt if teacher_system_prompt is None else teacher_system_prompt
        self.reference_policy: Any = None  # context factory yielding the initial policy (set by the optimizer)
        self.policy_handle: Any = None  # the PolicyHandle rewarders score with (set by the optimizer)
        self.last_loss_prompt_ids: list[list[int]] = []
        self._generation_prompt_ids: list[list[int]] = []
        self._conversations: dict[str, list[Any]] = {"generation": [], "loss": [], "teacher": []}

    def _generate(self, prompts: list) -> tuple:
        generation_prompts = [with_system(p, self.value_system_prompt) for p in prompts]
        started = time.perf_counter()
        with self.policy_handle.shared_prefill() if self.policy_handle is not None else nullcontext():
            output = list(super()._generate(generation_prompts))
        self._metrics["train"]["time/generation"].append(time.perf_counter() - started)
        self._generation_prompt_ids = [list(ids) for ids in output[0]]
        self._conversations = {"generation": generation_prompts, "loss": generation_prompts}
        self._conversations["teacher"] = self._teacher_prompts(prompts, generation_prompts)
        if self.options.exclude_system_prompt:
            loss_prompts = [with_system(p, self.options.loss_system_prompt) for p in copy.deepcopy(prompts)]
            loss_ids, _, _ = self._tokenize_prompts(loss_prompts)
            output[0] = [list(ids) for ids in loss_ids]
            self._conversations["loss"] = loss_prompts
        self.last_loss_prompt_ids = [list(ids) for ids in output[0]]
        return tuple(output)

    def _teacher_prompts(self, prompts: list, generation_prompts: list) -> list:
        """The prompts in the teacher context (the generation prompts themselves by default)."""
        if self.teacher_system_prompt == self.value_system_prompt:
            return generation_prompts
        return [with_system(p, self.teacher_system_prompt) for p in prompts]

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        rewards = super()._calculate_rewards(*args, **kwargs)
        self._metrics["train"]["time/scoring"].append(time.perf_counter() - started)
        return rewards

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        loss = super().training_step(*args, **kwargs)
        self._metrics["train"]["time/step"].append(time.perf_counter() - started)
        return loss

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super()._generate_and_score_completions(inputs)
        started = time.perf_counter()
        sampler_fix = self.options.exclude_system_prompt and "importance_sampling_ratio" in batch
        if sampler_fix or self.options.context_correction:
            generation = self._logps("generation", batch, reference=False)  # shared by both
            if sampler_fix:
                self._correct_sampler_in_its_context(batch, generation)
            if self.options.context_correction:
                self._reweight_advantages(batch, generation)
        distill = self.options.context_distillation > 0 and self.reference_policy is not None
        log_kl = self.options.log_kl and self.beta == 0.0 and self.reference_policy is not None
        if distill or log_kl:
            teacher = self._logps("teacher", batch, reference=True) if distill else None
            initial = self._logps("loss", batch, reference=True) if log_kl else None
            if credit_in_loss_pass(self):  # the loss's forward pass gives the live policy's side
                batch.update({k: v for k, v in ((TEACHER, teacher), (INITIAL, initial)) if v is not None})
            else:
                self._apply_credit(batch, self._logps("loss", batch, reference=False), teacher, initial)
        if self.options.distillation_topk > 0 and self.reference_policy is not None:
            self._add_teacher_topk(batch)
        self._metrics["train"]["time/value_context"].append(time.perf_counter() - started)
        return batch

    def _completion_logps(self, model: Any, prompt_ids: list[list[int]], batch: dict[str, Any]) -> torch.Tensor:
        """Per-token log-probabilities of the batch's completions after the given prompts
        (the plain pass, for a trainer used without a policy handle)."""
        pad = self._tokenizer.pad_token_id
        width = max(len(ids) for ids in prompt_ids)
        padded = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompt_ids], device=self.accelerator.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids], device=padded.device)
        completion_ids, completion_mask = batch["completion_ids"], batch["completion_mask"]
        with torch.no_grad():
            logps, _, _ = self._get_per_token_logps_and_entropies(
                model,
                torch.cat([padded, completion_ids], dim=1),
                torch.cat([mask, completion_mask], dim=1),
                completion_ids.size(1),
                batch_size=self.args.per_device_train_batch_size,
            )
        return logps

    def _logps(self, context: str, batch: dict[str, Any], *, reference: bool) -> torch.Tensor:
        """Log-probabilities of the batch's completions in the `generation`, `teacher` or `loss` context,
        by the initial (reference) or the live policy. Asked through the policy handle when
        there is one: it computes shared prefixes once, and a reference pass a rewarder already
        made over the same tokens (self-reward's contrast) is remembered, not made again."""
        if self.policy_handle is None:
            prompt_ids = self._plain_prompt_ids(context)
            with self.reference_policy() if reference else nullcontext(self.model) as model:
                return self._completion_logps(model, prompt_ids, batch)
        mask = batch["completion_mask"].bool()
        tokens = [row[keep].tolist() for row, keep in zip(batch["completion_ids"], mask)]
        rows = self.policy_handle.completion_logprobs(self._conversations[context], tokens, reference=reference)
        logps = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        for i, row in enumerate(rows):
            logps[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
        return logps

    def _plain_prompt_ids(self, context: str) -> list[list[int]]:
        if context == "loss":
            return self.last_loss_prompt_ids
        if context == "teacher" and self._conversations["teacher"] is not self._conversations["generation"]:
            ids, _, _ = self._tokenize_prompts(self._conversations["teacher"])
            return [list(row) for row in ids]
        return self._generation_prompt_ids

    def _correct_sampler_in_its_context(self, batch: dict[str, Any], generation: torch.Tensor) -> None:
        """TRL's sampler correction, recomputed against the trainer's log-probabilities in the
        sampler's context (with the value's system prompt); logs its mean. The sampler's
        log-probabilities are moved into the loss context by the same difference, so TRL's
        off-policy mask (which compares them with the loss pass) sees the engines' gap only."""
        mask = batch["completion_mask"] * batch.get("tool_mask", 1)
        sampler = batch["sampling_per_token_logps"]
        ratio = sampler_ratio(
            generation,
            sampler,
            mask,
            self.vllm_importance_sampling_mode,
            self.vllm_importance_sampling_clip_min,
            self.vllm_importance_sampling_clip_max,
        )
        batch["importance_sampling_ratio"] = ratio.to(batch["importance_sampling_ratio"].dtype)
        if batch.get("old_per_token_logps") is not None:
            batch["sampling_per_token_logps"] = sampler + (batch["old_per_token_logps"] - generation) * mask
        kept = ratio.expand_as(mask)[mask.bool()]
        self._metrics["train"]["context/sampler_ratio"].append(
            self.accelerator.gather(kept.mean() if kept.numel() else torch.ones((), device=mask.device)).mean().item()
        )

    def _reweight_advantages(self, batch: dict[str, Any], generation: torch.Tensor) -> None:
        """advantage *= min(pi(y|x) / pi(y|system,x), clip); logs the mean weight."""
        mask = batch["completion_mask"]
        loss_logps = (self._logps("loss", batch, reference=False) * mask).sum(dim=1)
        generation_logps = (generation * mask).sum(dim=1)
        weights = torch.exp(
            (loss_logps - generation_logps).clamp(max=torch.log(torch.tensor(self.options.correction_clip)))
        )
        batch["advantages"] = batch["advantages"] * weights.to(batch["advantages"].dtype)
        self._metrics["train"]["context/importance_weight"].append(weights.mean().item())

    def _apply_credit(
        self, batch: dict[str, Any], policy: torch.Tensor, teacher: torch.Tensor | None, initial: torch.Tensor | None
    ) -> None:
        """The distillation credit (given the teacher's side) and the KL log (given the initial
        policy's loss-context side), from the live policy's loss-context log-probabilities."""
        if teacher is not None:
            self._add_distillation_credit(batch, policy, teacher)
        if initial is not None:
            self._log_reference_kl(batch, policy, initial)

    def _add_distillation_credit(self, batch: dict[str, Any], policy: torch.Tensor, teacher: torch.Tensor) -> None:
        """advantage[t] += weight * (log pi_initial(y_t | teacher, x) - log pi(y_t | x)); logs the
        mean per-token gap, which shrinks as the prompt's effect moves into the weights."""
        mask = batch["completion_mask"]
        gap = (teacher - policy) * mask
        advantages = batch["advantages"]
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1)
        batch["advantages"] = advantages + self.options.context_distillation * gap.to(advantages.dtype)
        mean_gap = gap.sum() / mask.sum().clamp(min=1)
        self._metrics["train"]["context/distill_gap"].append(self.accelerator.gather(mean_gap).mean().item())

    def _log_reference_kl(self, batch: dict[str, Any], policy: torch.Tensor, initial: torch.Tensor) -> None:
        """TRL's k3 estimate of KL(policy || initial policy) on the loss sequences, for logging only."""
        mask = batch["completion_mask"]
        per_token = torch.exp(initial - policy) - (initial - policy) - 1
        kl = (per_token * mask).sum() / mask.sum().clamp(min=1)
        self._metrics["train"]["kl"].append(self.accelerator.gather(kl).mean().item())

    def _add_teacher_topk(self, batch: dict[str, Any]) -> None:
        """The initial policy's top-k next tokens and log-probabilities in the teacher context at
        every completion position, (B, T, k), for the loss's distribution-level term."""
        if self.policy_handle is None:
            raise DynalignError("distillation_topk needs a policy handle (the 'hf' backend gives one)")
        mask = batch["completion_mask"].bool()
        tokens = [row[keep].tolist() for row, keep in zip(batch["completion_ids"], mask)]
        rows = self.policy_handle.completion_topk(
            self._conversations["teacher"], tokens, self.options.distillation_topk, reference=True
        )
        k = self.options.distillation_topk
        ids = torch.zeros((*mask.shape, k), dtype=torch.long, device=mask.device)
        logps = torch.full((*mask.shape, k), -1e4, dtype=torch.float32, device=mask.device)
        for i, (row_ids, row_logps) in enumerate(rows):
            ids[i, : len(row_ids)] = torch.tensor(row_ids, dtype=torch.long)
            logps[i, : len(row_logps)] = torch.tensor(row_logps, dtype=torch.float32)
        batch["teacher_topk_ids"], batch["teacher_topk_logps"] = ids, logps

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Any:
        """TRL's loss, plus the top-k distillation term when `distillation_topk` is on."""
        loss = super()._compute_loss(model, inputs)
        if "teacher_topk_ids" not in inputs:
            return loss
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        width = completion_ids.size(1)
        ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        mask = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
        output = None  # the policy's logits at the completion positions (and one after)
        if self._shares_prompt(model, len(ids), {}):
            output = tail_forward(model, ids, mask, width, logits_to_keep=width + 1)
        if output is None:
            output = model(input_ids=ids, attention_mask=mask, logits_to_keep=width + 1)
        logits = output.logits[:, :-1]
        term = topk_distillation_loss(logits, inputs["teacher_topk_ids"], inputs["teacher_topk_logps"], completion_mask)
        self._metrics["train"]["context/topk_kl"].append(self.accelerator.gather(term.detach()).mean().item())
        return loss + self.options.distillation_topk_weight * term


def sampler_ratio(
    trainer: torch.Tensor, sampler: torch.Tensor, mask: torch.Tensor, mode: str, low: float | None, high: float | None
) -> torch.Tensor:
    """The sampler-mismatch weight pi_trainer / pi_sampler in one of TRL's `vllm_importance_sampling_mode`s:
    per token or per sequence, truncated to [low, high] or zeroed outside it. Tokens the sampler
    could not score (NaN) count as no mismatch."""
    diff = torch.nan_to_num((trainer - sampler) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        return torch.clamp(ratio, min=low, max=high)
    outside = (ratio < (low if low is not None else -math.inf)) | (ratio > (high if high is not None else math.inf))
    return ratio.masked_fill(outside, 0.0)
