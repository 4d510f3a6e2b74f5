"""Cross-process helpers for losses that compare samples across the whole (global) batch.

All helpers are no-ops in a single process (torch.distributed not initialised, or a world of one), so a loss
written with them runs unchanged on a laptop and under `torchrun`. Every rank must hold the same number of
samples (DDP with a DistributedSampler guarantees it; `all_gather` needs equal shapes).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed import _functional_collectives as funcol


def _initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes, 1 when torch.distributed is not initialised."""
    return dist.get_world_size() if _initialised() else 1


def rank() -> int:
    """Index of this process, 0 when torch.distributed is not initialised."""
    return dist.get_rank() if _initialised() else 0


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` along dim 0 over all processes, in rank order, keeping the autograd graph.

    Backward sums the gradients that every rank computed for a slice and hands each rank the sum for its own
    slice (a reduce-scatter), so rank r receives d(sum_r' loss_r')/d(its inputs). `accelerator.gather` and
    `dist.all_gather` cut the graph instead: only the local slice would get gradients from the local loss.
    (`torch.distributed.nn.functional.all_gather` computes the same but is deprecated in torch 2.13.)
    """
    if world_size() == 1:
        return tensor
    gathered = funcol.all_gather_single_autograd(tensor.contiguous(), gather_dim=0, group=dist.group.WORLD)
    return funcol.wait_tensor(gathered)


@torch.no_grad()
def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
    out = tensor.detach().clone()  # a new tensor: callers' tensors are never modified in place
    if world_size() > 1:
        dist.all_reduce(out, op=op)
    return out


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over processes (no gradient), e.g. the Sinkhorn marginals of SwAV."""
    return _all_reduce(tensor, dist.ReduceOp.SUM)


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over processes (no gradient), e.g. a global shift before exp()."""
    return _all_reduce(tensor, dist.ReduceOp.MAX)
