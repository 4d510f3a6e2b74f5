"""A FIFO memory of past embeddings: MoCo's dictionary of negative keys (He et al. 2020, Sec. 3.2) and SwAV's
queue of earlier features for computing codes with small batches (Caron et al. 2020, Sec. 4.3).

Adding to the queue is a side effect that must happen once per optimizer step, also with gradient
accumulation: the forward calls `stage(embeddings)` and the method's per-step hook (`on_optimizer_step`, called
by `OptimizerStepCallback` after the optimizer step) calls `commit()`, which enqueues everything staged since
the last commit, the embeddings of all processes (gathered) in rank order. The queue is a buffer, so it is
saved in checkpoints and restored on resume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_with_grad


class EmbeddingQueue(nn.Module):
    """`size` most recent (D,) embeddings, newest last written at `pointer - 1` (a ring buffer).

    `embeddings` is the (size, D) content: MoCo initialises it with random unit vectors (`random_init=True`, as
    the reference code), SwAV with zeros and uses it only once it is full (`is_full`). Rows are stored as given
    (normalise before staging if the method needs unit vectors).
    """

    def __init__(self, size: int, dim: int, random_init: bool = True):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be >= 1, got {size} and {dim}")
        initial = F.normalize(torch.randn(size, dim), dim=1) if random_init else torch.zeros(size, dim)
        self.register_buffer("embeddings", initial)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_filled", torch.tensor(size if random_init else 0, dtype=torch.long))
        self._staged: list[torch.Tensor] = []

    @property
    def size(self) -> int:
        return self.embeddings.shape[0]

    @property
    def is_full(self) -> bool:
        return int(self.num_filled) >= self.size

    def stage(self, embeddings: torch.Tensor) -> None:
        """Remember (N, D) embeddings of this micro-batch (detached) until the next `commit()`."""
        self._staged.append(embeddings.detach())

    @torch.no_grad()
    def commit(self, gather_distributed: bool = True) -> int:
        """Enqueue the staged embeddings (of every process when `gather_distributed`), oldest first, replacing
        the oldest rows; returns how many rows were written. More than `size` rows keep only the newest."""
        if not self._staged:
            return 0
        new = torch.cat(self._staged)
        self._staged.clear()
        if gather_distributed:
            new = gather_with_grad(new)  # under no_grad: a plain all-gather, rank order
        new = new[-self.size:].to(self.embeddings.dtype)
        n, start = new.shape[0], int(self.pointer)
        positions = (torch.arange(n, device=self.embeddings.device) + start) % self.size
        self.embeddings[positions] = new
        self.pointer.fill_((start + n) % self.size)
        self.num_filled.fill_(min(int(self.num_filled) + n, self.size))
        return n

    def discard_staged(self) -> None:
        """Drop staged embeddings without enqueuing them (e.g. after an evaluation forward)."""
        self._staged.clear()

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.embeddings.shape[1]}"
