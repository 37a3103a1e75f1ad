"""Distribution-level distillation over the teacher's top-k tokens.

`context_distillation` credits each *sampled* token by the teacher's log-probability of it: an
unbiased but noisy one-sample estimate of the divergence between teacher and policy. This term
compares whole next-token distributions instead, at every completion position: the teacher's
k most likely tokens, with the rest of its mass kept as one "tail" bucket, against the policy's
probabilities of the same k tokens and its own remaining mass,

    KL_t = sum_{v in topk_T} p_T(v) (log p_T(v) - log p_S(v)) + tail_T (log tail_T - log tail_S),

a forward KL on the teacher's support (as GKD- and self-distillation-style trainers use). Its
gradient raises the policy's probability of the tokens the teacher favours in proportion to the
teacher's probabilities, whichever token was sampled.
"""

from __future__ import annotations

from typing import Any

import torch

TAIL_FLOOR = 1e-6  # keeps log(1 - captured mass) finite when the top-k hold nearly all of it


def _tail_log(logps: Any) -> Any:
    """log(1 - sum(exp(logps))) over the last dimension, floored."""
    captured = torch.exp(logps).sum(dim=-1).clamp(max=1.0 - TAIL_FLOOR)
    return torch.log1p(-captured)


def topk_kl_per_token(student_logits: Any, teacher_ids: Any, teacher_logps: Any) -> Any:
    """(B, T) forward KL from the teacher's top-k distribution (plus its tail bucket) to the
    student's. `student_logits` (B, T, V) predict each completion token; `teacher_ids` and
    `teacher_logps` (B, T, k) are the teacher's top-k tokens and their log-probabilities."""
    student = torch.log_softmax(student_logits.float(), dim=-1).gather(-1, teacher_ids)
    teacher = teacher_logps.float()
    kl = (torch.exp(teacher) * (teacher - student)).sum(dim=-1)
    teacher_tail, student_tail = _tail_log(teacher), _tail_log(student)
    return kl + torch.exp(teacher_tail) * (teacher_tail - student_tail)


def topk_distillation_loss(student_logits: Any, teacher_ids: Any, teacher_logps: Any, mask: Any) -> Any:
    """The per-token KL averaged over the completion tokens `mask` keeps (a scalar)."""
    per_token = topk_kl_per_token(student_logits, teacher_ids, teacher_logps)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
