"""Which of a teacher's predictions on unlabelled examples become training targets, and with what weight.

Self-training (Scudder 1965; Yarowsky 1995; for deep networks Lee, "Pseudo-Label", ICML-W 2013) labels the
unlabelled set with a teacher's predictions and trains on them. The variants differ in which predictions they keep:

- `threshold`: an example is kept when the teacher's confidence (its largest class probability) is >= tau (Lee 2013
  with tau = 0 keeps everything; FixMatch, Sohn et al. 2020, and USB use tau = 0.95).
- `all`: every example, weight 1 (classic self-training).
- `weighted`: every example, weighted by the teacher's confidence, so uncertain pseudo-labels count less.
- `top_k`: the k most confident examples of each predicted class over the whole unlabelled set (Yalniz et al.,
  "Billion-scale semi-supervised learning", 2019, keep the top K per class; Noisy Student, Xie et al. 2020,
  balances classes the same way). Class-balanced, so a class the teacher over-predicts does not flood the student.
  It needs every example's confidence, which `TopKPerClassSelector` accumulates batch by batch.

Every rule maps (N, C) teacher probabilities to `Selection(labels (N,) long, weights (N,) float)`: the argmax class
and a weight, 0 for an example that is not used. The pseudo-label loss weighs each example's cross-entropy by it
(`soft_cross_entropy` / the masked cross-entropy in `hf_ssl.losses`). For Noisy Student's soft labels, the targets
are `soft_targets(teacher_logits, T)` (T = 1 in the paper) and the weights still come from a rule.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_with_grad

SELECTION_RULES = ("threshold", "all", "weighted", "top_k")


class Selection(NamedTuple):
    """Pseudo-labels and their weights: `labels` (N,) long, the argmax class; `weights` (N,) float, 0 = unused."""

    labels: torch.Tensor
    weights: torch.Tensor


def _check_probs(probs: torch.Tensor) -> None:
    if probs.dim() != 2:
        raise ValueError(f"pseudo-label selection expects (N, C) probabilities, got shape {tuple(probs.shape)}")


def soft_targets(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(teacher_logits / T), detached: the teacher's soft labels. Noisy Student uses T = 1 (its soft
    pseudo-labels are the plain softmax); T < 1 sharpens towards the argmax (MixMatch's sharpening in logit form),
    T > 1 smooths (distillation's temperature)."""
    if temperature <= 0:
        raise ValueError(f"soft_targets: temperature must be > 0, got {temperature}")
    return F.softmax(teacher_logits.detach() / temperature, dim=-1)


def select_threshold(probs: torch.Tensor, threshold: float) -> Selection:
    """Weight 1 where max_c p_c >= threshold, else 0 (the kept pseudo-labels of Lee 2013 / FixMatch)."""
    _check_probs(probs)
    confidence, labels = probs.detach().max(dim=-1)
    return Selection(labels, (confidence >= threshold).to(probs.dtype))


def select_all(probs: torch.Tensor) -> Selection:
    """Every example, weight 1."""
    _check_probs(probs)
    labels = probs.detach().argmax(dim=-1)
    return Selection(labels, torch.ones(probs.shape[0], dtype=probs.dtype, device=probs.device))


def select_weighted(probs: torch.Tensor) -> Selection:
    """Every example, weighted by its confidence max_c p_c (in [1/C, 1])."""
    _check_probs(probs)
    confidence, labels = probs.detach().max(dim=-1)
    return Selection(labels, confidence)


class TopKPerClassSelector(nn.Module):
    """Keeps the k most confident examples of each predicted class over the whole unlabelled set.

    Within a self-training round the teacher is frozen, so each unlabelled example has one confidence and one
    predicted class. The buffers `confidences` (U,) (-inf = not seen yet) and `predictions` (U,) (-1 = not seen)
    record them as batches arrive, keyed by the example's position in the unlabelled set (`unlabeled_index`, what
    `SemiSupervisedDataset` yields). For each class c, its threshold is the k-th largest confidence among the
    recorded examples predicted as c (-inf when fewer than k are recorded: then all of them are in its top k);
    a batch example is kept (weight 1) when its confidence >= its class's threshold.

    Exactness: once every unlabelled example has been seen since the last `reset()` (one epoch over the unlabelled
    set), the thresholds are those of the whole set and the rule is exactly "top k per class" (ties at the k-th
    confidence are all kept). Before that, the k-th largest of a subset is <= that of the whole set, so the rule
    keeps a superset of the exact selection: too many, never too few. A value seen again overwrites the old one
    (the teacher is frozen, so it changes only through the weak augmentation of its input); for an index repeated
    within one batch, which write wins is unspecified.

    Call `reset()` when a new teacher starts (a new round). The buffers are persistent, so a run resumed from a
    checkpoint mid-round keeps what it had seen.

    Several processes: `update` records the batches of every process (gathered in rank order), so each process
    holds the same buffers, those of one process reading the global batch, and selects as it would.
    """

    confidences: torch.Tensor
    predictions: torch.Tensor

    def __init__(self, num_unlabeled: int, num_classes: int, k: int):
        super().__init__()
        if num_unlabeled < 1 or num_classes < 1 or k < 1:
            raise ValueError(f"TopKPerClassSelector: num_unlabeled, num_classes and k must be >= 1, got "
                             f"{num_unlabeled}, {num_classes}, {k}")
        self.num_unlabeled, self.num_classes, self.k = num_unlabeled, num_classes, k
        self.register_buffer("confidences", torch.full((num_unlabeled,), float("-inf")))
        self.register_buffer("predictions", torch.full((num_unlabeled,), -1, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"num_unlabeled={self.num_unlabeled}, num_classes={self.num_classes}, k={self.k}"

    @torch.no_grad()
    def reset(self) -> None:
        """Forget every recorded confidence (a new teacher: a new round)."""
        self.confidences.fill_(float("-inf"))
        self.predictions.fill_(-1)

    @torch.no_grad()
    def update(self, unlabeled_index: torch.Tensor, probs: torch.Tensor) -> None:
        """Record the confidences and predicted classes of a batch: (M,) positions in 0..U-1, (M, C) probs."""
        _check_probs(probs)
        if probs.shape[1] != self.num_classes or unlabeled_index.shape != probs.shape[:1]:
            raise ValueError(f"TopKPerClassSelector.update: expected ({probs.shape[0]},) indices and "
                             f"({probs.shape[0]}, {self.num_classes}) probabilities, got "
                             f"{tuple(unlabeled_index.shape)} and {tuple(probs.shape)}")
        confidence, labels = probs.detach().max(dim=-1)
        # the whole set's top k: every process records the examples of all processes (a no-op in one process)
        index = gather_with_grad(unlabeled_index.to(self.confidences.device, torch.long))
        confidence, labels = gather_with_grad(confidence), gather_with_grad(labels)
        self.confidences[index] = confidence.to(self.confidences.device, self.confidences.dtype)
        self.predictions[index] = labels.to(self.predictions.device)

    @torch.no_grad()
    def class_thresholds(self) -> torch.Tensor:
        """(C,) the k-th largest recorded confidence of each predicted class; -inf where fewer than k are recorded.

        One sort of the U buffer entries, grouped by class (unseen entries form a group of their own, class -1,
        sorted first), so no (C, U) matrix and no per-class loop: O(U log U) per call."""
        classes = self.predictions + 1  # 0: not seen yet, c + 1: predicted class c
        order = torch.argsort(self.confidences, descending=True, stable=True)
        order = order[torch.argsort(classes[order], stable=True)]  # grouped by class, descending within a group
        sorted_confidences = self.confidences[order]
        counts = torch.bincount(classes, minlength=self.num_classes + 1)
        starts = torch.cumsum(counts, dim=0) - counts
        kth = (starts + self.k - 1)[1:].clamp(max=self.num_unlabeled - 1)  # in range even where counts < k
        has_k = counts[1:] >= self.k
        return torch.where(has_k, sorted_confidences[kth], torch.full_like(sorted_confidences[kth], float("-inf")))

    @torch.no_grad()
    def forward(self, unlabeled_index: torch.Tensor, probs: torch.Tensor) -> Selection:
        """Record the batch, then select: weight 1 where the example's confidence >= its class's threshold."""
        self.update(unlabeled_index, probs)
        confidence, labels = probs.detach().max(dim=-1)
        thresholds = self.class_thresholds().to(confidence.device, confidence.dtype)
        return Selection(labels, (confidence >= thresholds[labels]).to(probs.dtype))


def select_pseudo_labels(
    rule: str, probs: torch.Tensor, threshold: float = 0.95, top_k: TopKPerClassSelector | None = None,
    unlabeled_index: torch.Tensor | None = None,
) -> Selection:
    """Apply the selection rule named `rule` (one of `SELECTION_RULES`, a method's `--selection`) to (N, C) teacher
    probabilities. `threshold` is used by "threshold"; "top_k" needs the round's `top_k` selector and the batch's
    `unlabeled_index`."""
    if rule == "threshold":
        return select_threshold(probs, threshold)
    if rule == "all":
        return select_all(probs)
    if rule == "weighted":
        return select_weighted(probs)
    if rule == "top_k":
        if top_k is None or unlabeled_index is None:
            raise ValueError("select_pseudo_labels: the 'top_k' rule needs a TopKPerClassSelector and unlabeled_index")
        return top_k(unlabeled_index, probs)
    raise ValueError(f"select_pseudo_labels: unknown rule {rule!r}; expected one of {', '.join(SELECTION_RULES)}")


__all__ = [
    "SELECTION_RULES", "Selection", "TopKPerClassSelector", "select_all", "select_pseudo_labels",
    "select_threshold", "select_weighted", "soft_targets",
]
