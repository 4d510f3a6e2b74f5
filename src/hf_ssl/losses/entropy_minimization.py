"""Entropy minimisation (Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization", NeurIPS 2004).

The criterion (Eq. 7 there) is the labelled log-likelihood minus lambda times the conditional entropy of the
predictions on unlabelled data, H = -1/n sum_i sum_k p_k(x_i) log p_k(x_i): low-density separation, the decision
boundary is pushed away from the unlabelled points. Here, as a loss to minimise: CE(labelled) + lambda * H, with

    H = mean_i ( -sum_k p_ik log p_ik ),  p_i = softmax(logits_i),

computed from `log_softmax` (stable for confident predictions, where p log p -> 0). The gradient flows through p
into the logits: unlike pseudo-labelling, both the "target" and the prediction move.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["entropy_loss"]


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """Mean over examples of the entropy (nats) of softmax(`logits`) over the last dimension; 0 for no examples."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1).mean()
