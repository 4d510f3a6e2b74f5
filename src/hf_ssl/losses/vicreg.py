"""VICReg: variance-invariance-covariance regularisation (Bardes, Ponce & LeCun 2022, Sec. 3 and Alg. 1)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..nn.distributed import gather_with_grad


class VICRegLoss(NamedTuple):
    """The weighted total (to backpropagate) and the three unweighted terms (to log)."""

    loss: torch.Tensor
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


def _variance(z: torch.Tensor, gamma: float, eps: float) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)  # eps keeps the gradient of sqrt finite on collapsed dimensions
    return F.relu(gamma - std).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    n, dim = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / dim


def vicreg_loss(
    z1: torch.Tensor, z2: torch.Tensor, invariance_weight: float = 25.0, variance_weight: float = 25.0,
    covariance_weight: float = 1.0, gamma: float = 1.0, eps: float = 1e-4, gather_distributed: bool = False,
) -> VICRegLoss:
    """lambda * s(Z, Z') + mu * [v(Z) + v(Z')] + nu * [c(Z) + c(Z')] on two (N, D) batches of embeddings.

    s: mean squared error between the paired embeddings, averaged over samples AND dimensions as in Algorithm 1
    and the code (the text's s = 1/n sum_i ||z_i - z'_i||^2 is D times that); per sample, so on the local batch
    like the reference's `repr_loss`. v: mean over dimensions of relu(gamma - sqrt(Var + eps)). c: sum of the
    squared off-diagonal entries of the covariance matrix, divided by D. v and c are batch statistics: with
    `gather_distributed` they use the embeddings of all processes (gathered with gradient, as the reference's
    FullGatherLayer does), so they equal the global-batch values on every rank.

    The variance terms of the two branches are summed as in the paper's Algorithm 1; the released code
    (main_vicreg.py) averages them (/2), i.e. it uses half the variance weight for the same coefficient.

    Distributed: the mean of the rank losses is the global-batch loss (the invariance term is a per-rank mean,
    the other two are the same on all ranks); each rank's inputs receive world_size x the global-batch
    gradient, which DDP's averaging turns back into it.
    """
    invariance = F.mse_loss(z1, z2)
    if gather_distributed:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    variance = _variance(z1, gamma, eps) + _variance(z2, gamma, eps)
    covariance = _covariance(z1) + _covariance(z2)
    loss = invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
    return VICRegLoss(loss, invariance, variance, covariance)
