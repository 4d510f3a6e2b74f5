"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020, Eq. 1 and Alg. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.distributed import gather_with_grad, rank


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather_distributed: bool = False,
) -> torch.Tensor:
    """SimCLR's contrastive loss over the 2N projections of N images seen through two augmentations.

    Args:
        z1, z2: (N, D) projections of the first and second view; row k of both comes from image k.
        temperature: tau in sim(z_i, z_k) / tau (the paper uses 0.5 at batch 4096, 0.1 for larger batches).
        gather_distributed: compare the local anchors with the candidates of ALL processes, as SimCLR's
            TPU implementation does (each core's anchors against the global batch). Needs equal local batches.

    For every anchor i, l(i, j) = -log( exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau) ), with j its other view:
    the denominator holds the positive and the 2N - 2 negatives. The loss is the mean over all 2N anchors.

    Distributed: each rank averages over its 2n local anchors, so the mean of the rank losses is the loss of the
    global batch. The gather's backward sums the gradients of all ranks, so each rank's inputs receive
    world_size x the global-batch gradient, which DDP's averaging over ranks turns back into exactly it.
    """
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)  # dot products become cosine similarities
    n = z1.shape[0]
    all1, all2 = (gather_with_grad(z1), gather_with_grad(z2)) if gather_distributed else (z1, z2)
    offset = rank() * n if gather_distributed else 0  # where this rank's samples sit in the global batch
    total = all1.shape[0]

    anchors = torch.cat([z1, z2])  # (2n, D): local anchors
    candidates = torch.cat([all1, all2])  # (2N, D): every view of every image, first views then second views
    logits = anchors @ candidates.T / temperature
    local = torch.arange(n, device=z1.device) + offset
    itself = torch.cat([local, local + total])
    positive = torch.cat([local + total, local])
    # the anchor's similarity with itself is not a candidate: the indicator 1[k != i] of the paper
    self_mask = F.one_hot(itself, num_classes=2 * total).bool()
    logits = logits.masked_fill(self_mask, float("-inf"))
    return F.cross_entropy(logits, positive)
