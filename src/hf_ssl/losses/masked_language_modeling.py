"""Masked language modelling loss (BERT, Devlin et al., NAACL 2019; the notes' Eq. 5), also BEiT's masked image
modelling loss on visual tokens (Bao et al., ICLR 2022, Eq. 1).

The notes write the loss of one text as the sum over its masked positions j of -log softmax(h_j)_{x_j}.
BERT's implementation averages that over all masked positions of the batch (``masked_lm_weights`` numerator /
denominator), so the loss does not grow with the masking ratio or the sequence length; so does this function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.token_masking import IGNORE_INDEX


def masked_language_modeling_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the original token at the selected positions only.

    Args:
        logits: (..., V) scores over the vocabulary, for every position or only for the selected ones.
        labels: (...) the original token where a position was selected, ``IGNORE_INDEX`` (-100) elsewhere.
        reduction: "mean" over the selected positions of the batch (BERT's), or "sum" (the notes' Eq. 5 summed
            over the texts of the batch).

    Computed in float32 even under bf16 autocast (a softmax over tens of thousands of logits). A batch without
    selected positions gives 0 (with a gradient), not NaN.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction}")
    return total / (flat_labels != IGNORE_INDEX).sum().clamp_min(1)
