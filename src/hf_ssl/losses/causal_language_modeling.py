"""Causal (next-token) language modelling loss (GPT, Radford et al. 2018/2019): with teacher forcing the model
reads the true tokens 1..t and is scored on token t+1, at every position at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.token_masking import IGNORE_INDEX


def causal_language_modeling_loss(logits: torch.Tensor, input_ids: torch.Tensor,
                                  attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over all predicted positions of -log p(x_{t+1} | x_1..x_t).

    Args:
        logits: (B, L, V), position t scoring the token at t+1.
        input_ids: (B, L), the sequence itself (its own targets, shifted by one).
        attention_mask: (B, L), 0 at padding, whose tokens are then not targets.

    The last position has no next token and is not scored. Computed in float32.
    """
    targets = input_ids[:, 1:]
    if attention_mask is not None:
        targets = targets.masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)
