"""Barlow Twins redundancy-reduction loss (Zbontar et al. 2021, Eq. 1-2 and Alg. 1)."""

from __future__ import annotations

import torch

from ..nn.distributed import gather_with_grad


def barlow_twins_loss(
    z1: torch.Tensor, z2: torch.Tensor, lambda_offdiag: float = 5e-3, eps: float = 1e-5,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 with C the cross-correlation of the two views.

    Args:
        z1, z2: (N, D) projections of the two views, row k of both from image k.
        lambda_offdiag: weight of the redundancy-reduction term (5e-3 in the paper).
        eps: as in the reference code's BatchNorm1d(affine=False): each dimension is standardised with the
            biased batch variance, (z - mean) / sqrt(var + eps), so identical views give C_ii = 1 (the
            paper's pseudocode uses the unbiased std, whose C_ii would be (N - 1) / N).
        gather_distributed: standardise and correlate over the embeddings of all processes (the reference
            uses SyncBatchNorm and all-reduces C).

    C = z1n^T z2n / N, with N the (global) batch size.

    Distributed: every rank computes the global-batch loss. Each rank's inputs receive world_size x the
    global-batch gradient (the gather sums all ranks' identical losses), which DDP's averaging turns back into
    it. The reference code all-reduces C outside autograd, which instead leaves 1/world_size of the gradient
    after DDP's averaging (harmless under LARS, whose trust ratio ignores the gradient scale).
    """
    if gather_distributed:
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    n = z1.shape[0]

    def standardise(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)

    c = standardise(z1).T @ standardise(z2) / n
    on_diagonal = (1 - torch.diagonal(c)).pow(2).sum()
    off_diagonal = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on_diagonal + lambda_offdiag * off_diagonal
