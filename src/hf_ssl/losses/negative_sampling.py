"""Negative sampling (Mikolov et al., "Distributed Representations of Words and Phrases and their
Compositionality", NIPS 2013, eq. 4): the objective of word2vec's skip-gram and CBOW.

For an input vector v (a context word's input vector in skip-gram, the mean of the context words' input vectors
in CBOW), the output vector u_o of the observed word and the output vectors u_k of K words drawn from the noise
distribution, one example's loss is

    -log sigma(u_o . v) - sum_k log sigma(-u_k . v)

Examples come in groups that share their observed word and noise words (the pairs of one window in skip-gram,
one example per group in CBOW): the scores of a group are one (M x D) @ (D x (1 + K)) product.

This file depends on torch only: the word2vec model's exported code runs where hf_ssl is not installed and
carries a copy of `negative_sampling_loss` (the tests check that both agree).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_sampling_loss(
    input_vectors: torch.Tensor, target_vectors: torch.Tensor, negative_vectors: torch.Tensor,
    input_mask: torch.Tensor | None = None, negative_mask: torch.Tensor | None = None, reduction: str = "sum",
) -> torch.Tensor:
    """The negative-sampling loss of N groups of M examples (M = 1: one example per group).

    Args:
        input_vectors: (N, M, D) the input vectors v of each group's examples, or (N, D) for M = 1.
        target_vectors: (N, D) u_o, the output vector of each group's observed word.
        negative_vectors: (N, K, D) u_k, the output vectors of each group's noise words.
        input_mask: (N, M) bool, which examples are real (padding is left out); None: all.
        negative_mask: (N, K) bool, False for a noise word whose terms are left out (word2vec.c and gensim skip a
            noise draw equal to the observed word); None: all count.
        reduction: "sum" over the real examples, "mean" over them, or "none": (N, M) per example (0 at padding).
    """
    if input_vectors.dim() == 2:
        input_vectors = input_vectors.unsqueeze(1)
    outputs = torch.cat([target_vectors.unsqueeze(1), negative_vectors], dim=1)  # (N, 1 + K, D)
    scores = torch.bmm(input_vectors, outputs.transpose(1, 2))  # (N, M, 1 + K)
    positive = F.logsigmoid(scores[..., 0])
    negative = F.logsigmoid(-scores[..., 1:])
    if negative_mask is not None:
        negative = negative * negative_mask.unsqueeze(1)
    per_example = -(positive + negative.sum(-1))  # (N, M)
    if input_mask is not None:
        per_example = per_example * input_mask
    if reduction == "none":
        return per_example
    if reduction == "sum":
        return per_example.sum()
    if reduction == "mean":
        count = input_mask.sum() if input_mask is not None else per_example.new_tensor(per_example.numel())
        return per_example.sum() / count.clamp(min=1)
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


__all__ = ["negative_sampling_loss"]
