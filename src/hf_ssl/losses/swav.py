"""SwAV's equipartitioned codes and swapped-prediction loss (Caron et al. 2020, Sec. 3.1, Eq. 3 and Alg. 1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..nn.distributed import all_reduce_max, all_reduce_sum, world_size


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3, gather_distributed: bool = False,
) -> torch.Tensor:
    """Soft assignments Q of B samples to K prototypes with equal prototype usage over the (global) batch.

    Args:
        scores: (B, K) similarities z^T c between normalised features and prototypes (no gradient is taken).
        epsilon: entropy regularisation; Q starts from exp(scores / epsilon).
        iterations: Sinkhorn-Knopp steps (3 in the paper).
        gather_distributed: the per-prototype sums (and the total) run over the samples of all processes,
            as in the reference `distributed_sinkhorn`, so that the equipartition holds for the global batch.

    Follows the reference code: Q /= sum(Q); per step, each prototype (column) is scaled to total 1/K and then
    each sample (row) to total 1/B_global; finally Q *= B_global, so every returned row sums to 1 and after
    enough steps every column sums to B_global / K. Computed in at least float32 after subtracting the global
    maximum score: a constant shift cancels in the first normalisation, and it keeps exp() from overflowing
    (the reference has no shift, which only works because its scores are cosines in [-1, 1]).
    """
    dtype = torch.promote_types(scores.dtype, torch.float32)
    scores = scores.detach().to(dtype)
    reduce = all_reduce_sum if gather_distributed else (lambda t: t)
    shift = all_reduce_max(scores.max()) if gather_distributed else scores.max()
    q = torch.exp((scores - shift) / epsilon)
    batch = scores.shape[0] * (world_size() if gather_distributed else 1)
    prototypes = scores.shape[1]
    q = q / reduce(q.sum())
    for _ in range(iterations):
        q = q / reduce(q.sum(dim=0, keepdim=True)) / prototypes  # each prototype gets 1/K of the mass
        q = q / q.sum(dim=1, keepdim=True) / batch  # each sample gets 1/B (rows are local: no reduction)
    return q * batch


def swav_loss(
    scores_per_view: Sequence[torch.Tensor], codes_per_view: Mapping[int, torch.Tensor], temperature: float = 0.1,
) -> torch.Tensor:
    """Swapped prediction: predict the code of view i from every other view v, with p_v = softmax(scores_v / tau).

    Args:
        scores_per_view: one (B, K) prototype-score tensor per crop, large crops first (the multi-crop order).
        codes_per_view: crop index -> (B, K) codes from `sinkhorn_knopp` for the crops used for assignment
            (the two large crops in the paper); treated as targets (no gradient).
        temperature: tau of the prediction softmax (0.1).

    As in the reference loop: for each code view i, the mean over the batch of -sum_k q_i log p_v is averaged
    over the other views v != i, and the result averaged over the code views. Per-sample given the codes (the
    cross-process coupling lives in `sinkhorn_knopp`), so the mean of the rank losses is the global loss.
    """
    total = 0.0
    for i, codes in codes_per_view.items():
        codes = codes.detach()
        others = [v for v in range(len(scores_per_view)) if v != i]
        subloss = sum(-(codes * F.log_softmax(scores_per_view[v] / temperature, dim=1)).sum(dim=1).mean()
                      for v in others)
        total = total + subloss / len(others)
    return total / len(codes_per_view)
