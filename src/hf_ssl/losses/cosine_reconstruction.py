"""Cosine-similarity reconstruction of features: BEiT v2's VQ-KD objective (Peng et al. 2022, Sec. 2.2, Eq. 2), where
a tokenizer's decoder reconstructs a teacher's per-patch features."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`1 - cos(prediction, target)` per vector, averaged over all of them.

    Args:
        prediction, target: (..., D) vectors; only their directions matter (the teacher's feature scale is
            arbitrary). The target gets no gradient from this loss when it comes from a frozen teacher.

    0 for a perfect reconstruction of every direction, 1 for orthogonal ones, 2 at worst.
    """
    return (1 - F.cosine_similarity(prediction.float(), target.float(), dim=-1)).mean()
