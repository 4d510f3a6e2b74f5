"""Stop-gradient similarity losses of SimSiam (Chen & He 2021, Alg. 1) and BYOL (Grill et al. 2020, Eq. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine_similarity(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stopgrad(z)), averaged over the batch (range [-1, 1]).

    Args:
        p: (N, D) predictor outputs, which receive the gradient.
        z: (N, D) projections of the other view, treated as a constant: the stop-gradient is what keeps
            SimSiam from collapsing, so it is applied here rather than trusted to the caller.

    The symmetric loss is D(p1, z2) / 2 + D(p2, z1) / 2. Per-sample, so it needs no cross-process gather.
    """
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's ||normalize(p) - normalize(stopgrad z)||^2 = 2 - 2 cos(p, stopgrad z), averaged over the batch.

    `z` is the target network's projection (no gradient flows into it); BYOL sums the loss of both view orders.
    """
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=1).mean()
