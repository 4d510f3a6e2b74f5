"""Cross-entropy of token ids on masked positions only: BERT's masked language modelling (Devlin et al. 2019) and
BEiT's masked image modelling (Bao et al. 2022, Sec. 2.3, Eq. 1), where the ids are a visual tokenizer's."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_token_prediction_loss(logits: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked positions of the batch.

    Args:
        logits: (B, N, K) scores over the K-token vocabulary (codebook) at every position.
        target_ids: (B, N) long, the true token of every position.
        mask: (B, N) bool (or 0/1), True where a position was masked and so is scored; the others contribute
            nothing, whatever their logits and targets.

    Every masked position of the batch weighs the same (the mean over all of them, as the reference
    `F.cross_entropy(logits[bool_masked_pos], labels)`); it is per sample, so no cross-process gather is needed.
    """
    mask = mask.bool()
    if not bool(mask.any()):
        return logits.sum() * 0.0  # no masked position: a zero that keeps the graph
    return F.cross_entropy(logits[mask].float(), target_ids[mask])
