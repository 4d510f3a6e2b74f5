"""The masked / weighted hard pseudo-label cross-entropy of self-training methods.

Pseudo-Label (Lee 2013, Eq. 15) trains on the unlabelled examples with the model's own argmax as the target; FixMatch
(Sohn et al. 2020, Eq. 4) keeps only the confident ones, l_u = 1 / (mu B) sum_b 1(max q_b >= tau) H(q_hat_b, p_b).
With a weight w_i per example (1 / 0 for a threshold, the confidence for "weighted" selection):

    l_u = sum_i w_i CE(logits_i, y_i) / N_u

normalised by *all* N_u unlabelled examples of the batch, masked or not (FixMatch's 1 / (mu B), USB's
`ce_loss(...) * mask).mean()`), so the loss grows with the share of examples that pass the threshold rather than
being renormalised over them. The targets are constants: no gradient flows into the pseudo-labels or the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pseudo_label_loss"]


def pseudo_label_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """`logits` (N, K) of the unlabelled examples (the prediction that learns), `targets` (N,) hard pseudo-labels,
    `weights` (N,) in [0, 1] (None: all 1). Returns sum_i w_i CE_i / N (0 for an empty batch, with a graph)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    per_example = F.cross_entropy(logits.float(), targets.detach().long(), reduction="none")
    if weights is not None:
        per_example = per_example * weights.detach().to(per_example.dtype)
    return per_example.mean()
