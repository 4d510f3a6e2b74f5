"""RankMe, the effective rank of a set of embeddings (Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the
Downstream Performance of Pretrained Self-Supervised Representations by Their Rank", ICML 2023, Eq. 1).

With sigma_k the singular values of the (N, D) embedding matrix Z,

    p_k = sigma_k / ||sigma||_1 + eps,     RankMe(Z) = exp(-sum_k p_k log p_k),

a smooth count of the dimensions the embeddings use: 1 when they collapse onto one direction, min(N, D) when every
singular value is equal. A label-free collapse signal that the paper finds to track downstream accuracy within a
method; it needs N >= D embeddings to be able to reach D (the paper uses 25,600).
"""

from __future__ import annotations

import torch

EPSILON = 1e-7  # the paper's epsilon (its reference code: 1e-7)


def rankme(embeddings: torch.Tensor, epsilon: float = EPSILON) -> float:
    """RankMe of (N, D) embeddings (any float dtype; computed in float64, not centred, as in the paper)."""
    if embeddings.dim() != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"rankme expects a non-empty (N, D) matrix, got shape {tuple(embeddings.shape)}")
    singular_values = torch.linalg.svdvals(embeddings.detach().double().cpu())
    total = singular_values.sum()
    if total <= 0:  # every embedding is zero: one (degenerate) direction at most
        return 1.0
    p = singular_values / total + epsilon
    return float(torch.exp(-(p * p.log()).sum()))


__all__ = ["rankme"]
