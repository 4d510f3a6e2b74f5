"""InfoNCE as used by MoCo v2 (Chen et al. 2020, queue of negatives) and MoCo v3 (Chen et al. 2021, in-batch keys)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.distributed import gather_with_grad, rank


def info_nce_loss(
    query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor | None = None, temperature: float = 0.2,
    gather_distributed: bool = False, scale_by_temperature: bool = False,
) -> torch.Tensor:
    """-log( exp(q.k+ / tau) / sum_k exp(q.k / tau) ), averaged over the queries; all vectors l2-normalised.

    Args:
        query: (N, D) outputs of the online (query) encoder.
        key: (N, D) outputs of the momentum (key) encoder for the other view; row i is query i's positive.
            The caller computes it without gradient (MoCo); if it does carry one, the gradient is kept.
        queue: (K, D) negative keys of earlier batches, one per row (MoCo's buffer is its transpose). Given:
            MoCo v1/v2, logits = [q.k_i, q.queue] with the positive at index 0. None: MoCo v3, the keys of
            the (gathered) batch are the candidates and query i's positive is key i.
        temperature: tau (MoCo v2: 0.2; MoCo v3: 0.2 for ViT, 1.0 for ResNet).
        gather_distributed: MoCo v3 only: the keys of all processes are candidates and the label of local query
            i is rank * N + i, as in MoCo v3's `contrastive_loss` (concat_all_gather). In MoCo v2 the loss is
            per process (the caller gathers keys only to enqueue them), so combining it with a queue is an error.
        scale_by_temperature: multiply by 2 * tau as MoCo v3's code does (it keeps the gradient scale
            independent of tau).

    MoCo v3 symmetrises: info_nce_loss(q1, k2) + info_nce_loss(q2, k1). Distributed (no queue): each rank
    averages over its local queries, so the mean of the rank losses is the global-batch loss; each rank's
    query receives world_size x the global-batch gradient, which DDP's averaging turns back into it.
    """
    query, key = F.normalize(query, dim=1), F.normalize(key, dim=1)
    if queue is not None:
        if gather_distributed:
            raise ValueError("gather_distributed applies to MoCo v3 (queue=None); MoCo v2 scores each process's "
                             "queries against its own keys and the queue, so gather the keys only to enqueue them")
        positive = (query * key).sum(dim=1, keepdim=True)
        negatives = query @ F.normalize(queue, dim=1).T
        logits = torch.cat([positive, negatives], dim=1) / temperature
        labels = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    else:
        keys = gather_with_grad(key) if gather_distributed else key
        offset = rank() * query.shape[0] if gather_distributed else 0
        logits = query @ keys.T / temperature
        labels = torch.arange(query.shape[0], device=query.device) + offset
    loss = F.cross_entropy(logits, labels)
    return loss * (2 * temperature) if scale_by_temperature else loss
