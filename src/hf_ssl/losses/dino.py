"""DINO self-distillation loss and teacher centering (Caron et al. 2021, Eq. 3-4 and Alg. 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..nn.distributed import all_reduce_sum


def dino_loss(
    student_logits: Sequence[torch.Tensor], teacher_logits: Sequence[torch.Tensor], center: torch.Tensor,
    student_temperature: float = 0.1, teacher_temperature: float = 0.04,
) -> torch.Tensor:
    """Cross-entropy H(P_t, P_s) between teacher and student outputs of different views of the same images.

    Args:
        student_logits: (B, K) head outputs per crop, the global crops first in the same order as the teacher's.
        teacher_logits: (B, K) teacher head outputs for the global crops only (no gradient is taken).
        center: (K,) or (1, K) running mean of the teacher outputs (see `update_center`).
        student_temperature, teacher_temperature: tau_s, tau_t; a low tau_t sharpens the teacher and the
            centering keeps one dimension from dominating: together they prevent collapse.

    P_t = softmax((t - center) / tau_t), log P_s = log_softmax(s / tau_s); the batch mean of
    -sum_k P_t log P_s is averaged over every (teacher view, student view) pair except a view with itself, as in
    the reference `DINOLoss`. Per-sample, so the mean of the rank losses is the global loss.
    """
    with torch.no_grad():  # the teacher is updated by EMA of the student, never by this gradient
        targets = [F.softmax((t.detach() - center) / teacher_temperature, dim=-1) for t in teacher_logits]
    total, pairs = 0.0, 0
    for t_index, target in enumerate(targets):
        for s_index, student in enumerate(student_logits):
            if s_index == t_index:  # the same global crop seen by both networks: nothing to predict
                continue
            log_probs = F.log_softmax(student / student_temperature, dim=-1)
            total = total + (-(target * log_probs).sum(dim=-1)).mean()
            pairs += 1
    return total / pairs


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_logits: Sequence[torch.Tensor], momentum: float = 0.9) -> torch.Tensor:
    """Return momentum * center + (1 - momentum) * mean of the teacher outputs over the global batch (Eq. 4).

    The mean runs over all global crops and all processes (sums and counts all-reduced, as the reference
    `update_center`). Call once per step, after the loss, and keep the returned tensor for the next step.
    """
    outputs = torch.cat([t.detach() for t in teacher_logits])
    batch_sum = all_reduce_sum(outputs.sum(dim=0))
    count = all_reduce_sum(torch.tensor(float(outputs.shape[0]), dtype=outputs.dtype, device=outputs.device))
    return center * momentum + (batch_sum / count).reshape(center.shape) * (1 - momentum)
