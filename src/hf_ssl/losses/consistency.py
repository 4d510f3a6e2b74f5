"""Consistency between a student's and a teacher's class predictions.

- `softmax_mse_loss`: Mean Teacher's consistency cost (Tarvainen & Valpola, NeurIPS 2017, Sec. 2): the squared
  distance between the student's and the (EMA) teacher's softmax outputs for two noisy views of the same input.
- `soft_cross_entropy`: the cross-entropy with soft targets, -sum_c q_c log p_c, which Noisy Student (Xie et al.,
  CVPR 2020, Sec. 2) uses when the teacher's soft outputs are the student's targets (and knowledge distillation,
  Hinton et al. 2015, before it).

Both treat the targets as constants: no gradient flows into the teacher, which Mean Teacher updates by EMA and
Noisy Student freezes.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def softmax_mse_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor,
    class_reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Mean Teacher's consistency cost J = E_x || softmax(f(x, theta', eta')) - softmax(f(x, theta, eta)) ||^2.

    Args:
        student_logits: (N, C) logits of the student (gradients flow into them).
        teacher_logits: (N, C) logits of the teacher on another noisy view (detached here).
        class_reduction: how the squared differences of one example are reduced over its C classes.
            "mean" (default) divides the sum by C, as the reference implementation does: CuriousAI/mean-teacher
            `pytorch/mean_teacher/losses.py::softmax_mse_loss` returns `F.mse_loss(..., size_average=False) /
            num_classes`, which `main.py` divides by the minibatch size, i.e. the mean over all N x C entries
            (USB's `consistency_loss(..., "mse")` reduces the same way). The paper's consistency weights (100 on
            CIFAR-10, 10 on ImageNet) were tuned with this scale. "sum" is the squared Euclidean distance of the
            formula as written, C times larger.

    Returns the mean over the N examples (a scalar). With N = 0 it is 0 (not NaN), so a batch without
    unlabelled examples adds nothing.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"softmax_mse_loss: expected two (N, C) tensors of one shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if class_reduction not in ("mean", "sum"):
        raise ValueError(f"softmax_mse_loss: class_reduction must be 'mean' or 'sum', got {class_reduction!r}")
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0  # keeps the graph (and the device) of an empty batch
    student = F.softmax(student_logits, dim=-1)
    teacher = F.softmax(teacher_logits.detach(), dim=-1)  # the teacher is a target, moved only by EMA
    per_example = (student - teacher).pow(2).sum(dim=-1)
    if class_reduction == "mean":
        per_example = per_example / student_logits.shape[-1]
    return per_example.mean()


def soft_cross_entropy(
    logits: torch.Tensor, target_probs: torch.Tensor, weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy with soft targets: (1 / N) sum_i w_i * (-sum_c q_ic log softmax(logits_i)_c).

    Args:
        logits: (N, C) student logits.
        target_probs: (N, C) target distributions q (each row sums to 1; detached here), e.g. the teacher's
            softmax at temperature T (`hf_ssl.nn.pseudo_labeling.soft_targets`). One-hot rows give the usual
            hard-label cross-entropy.
        weights: optional (N,) per-example weights w_i (a selection rule's output: 0 drops an example, a
            confidence down-weights it); 1 when None. The sum is divided by N, all examples, not by sum(w):
            the normalisation USB uses for masked unlabelled losses, so the loss shrinks when few examples are
            kept instead of over-weighting them.

    Returns the scalar loss; 0 for N = 0.
    """
    if logits.shape != target_probs.shape or logits.dim() != 2:
        raise ValueError(f"soft_cross_entropy: expected two (N, C) tensors of one shape, got "
                         f"{tuple(logits.shape)} and {tuple(target_probs.shape)}")
    if weights is not None and weights.shape != logits.shape[:1]:
        raise ValueError(f"soft_cross_entropy: weights must be ({logits.shape[0]},), got {tuple(weights.shape)}")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    per_example = -(target_probs.detach() * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    if weights is not None:
        per_example = per_example * weights.detach().to(per_example.dtype)
    return per_example.mean()


__all__ = ["soft_cross_entropy", "softmax_mse_loss"]
