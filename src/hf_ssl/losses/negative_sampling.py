"""Negative sampling (Mikolov et al., "Distributed Representations of Words and Phrases and their
Compositionality", NIPS 2013, eq. 4): the objective of word2vec's skip-gram and CBOW.

For an input vector v (a context word's input vector in skip-gram, the mean of the context words' input vectors
in CBOW), the output vector u_o of the observed word and the output vectors u_k of K words drawn from the noise
distribution, one example's loss is

    -log sigma(u_o . v) - sum_k log sigma(-u_k . v)

Here the examples come as a token stream (T tokens, the corpus after subsampling) and a (T, 2W) mask of which
token at offset -W..-1, 1..W of centre c is one of its context words, so that the T input and T output vectors
are each looked up once (not once per pair: that was most of the memory traffic, and most of the time, of a
step). Noise words are shared by a *group* of consecutive input tokens: each group draws S words, and every pair
whose input token is in the group scores against all S with weight K / S, so its noise term
`-(K / S) sum_s log sigma(-u_s . v)` has the paper's expectation `-K E[log sigma(-u_n . v)]` (the S words are
i.i.d. noise draws). The noise scores of a group are then one (group x D) @ (D x S) product instead of one tiny
product per pair (Ji et al. 2016, "Parallelizing Word2Vec in Shared and Distributed Memory", share noise words
across a window's pairs for the same reason).

This file depends on torch only: it is part of the code the exported word2vec folder carries.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_BLOCK = 32  # centres per block of the banded products: bigger blocks waste more of the product, smaller ones
# run more, smaller products (torch's CPU bmm costs microseconds per matrix); 32 was fastest for window 5 here


def context_offsets(window: int) -> list[int]:
    """The offsets of the (T, 2W) context masks' columns: -W..-1, 1..W."""
    return [o for o in range(-window, window + 1) if o != 0]


def _windows(vectors: torch.Tensor, window: int, block: int) -> tuple[torch.Tensor, int]:
    """(blocks, block + 2W, D): `vectors` (T, D) zero-padded, block b holding tokens b*block - W .. (b+1)*block + W - 1,
    every centre's whole window; `block` >= 2W. Made as one copy of two reshapes (the rows of block b and the first
    2W rows of block b + 1), not as `unfold`'s overlapping view: unfold's backward took 2.7 ms of word2vec's 13 ms
    forward and backward (batches of 8 chunks, 1 thread), a slice's backward takes nothing."""
    tokens, dim = vectors.shape
    blocks = -(-tokens // block)
    rows = F.pad(vectors, (0, 0, window, (blocks + 1) * block - tokens - window)).view(blocks + 1, block, dim)
    return torch.cat([rows[:blocks], rows[1:, :2 * window]], dim=1), blocks


def _band_index(window: int, block: int, device: torch.device) -> torch.Tensor:
    """(block, 2W): the column of centre i's context at each offset in its block's window."""
    offsets = torch.tensor(context_offsets(window), device=device) + window
    return torch.arange(block, device=device)[:, None] + offsets[None]


def banded_scores(output_vectors: torch.Tensor, input_vectors: torch.Tensor, window: int,
                  block: int = _BLOCK) -> torch.Tensor:
    """(T, 2W) scores u_c . v_{c+o} of every centre c with the token at each offset o (0 past either end).

    Computed per block of centres as one (block x D) @ (D x (block + 2W)) product, of which each row keeps its 2W
    band entries: 2W / (block + 2W) of the product is used, but bmm over T / block matrices is several times
    faster than over T matrices of 1 x 2W."""
    tokens, dim = output_vectors.shape
    block = max(block, 2 * window)  # a block's window reaches into the next block only
    windows, blocks = _windows(input_vectors, window, block)
    outputs = F.pad(output_vectors, (0, 0, 0, blocks * block - tokens)).view(blocks, block, dim)
    scores = torch.bmm(outputs, windows.transpose(1, 2))  # (blocks, block, block + 2W)
    index = _band_index(window, block, scores.device).expand(blocks, block, 2 * window)
    return scores.gather(2, index).reshape(blocks * block, 2 * window)[:tokens]


def window_sum(vectors: torch.Tensor, context_mask: torch.Tensor, block: int = _BLOCK) -> torch.Tensor:
    """(T, D): for every centre c the sum of `vectors` (T, D) at its context positions (CBOW's bag)."""
    tokens, dim = vectors.shape
    window = context_mask.shape[1] // 2
    block = max(block, 2 * window)  # a block's window reaches into the next block only
    windows, blocks = _windows(vectors, window, block)
    mask = F.pad(context_mask.to(vectors.dtype), (0, 0, 0, blocks * block - tokens)).view(blocks, block, 2 * window)
    band = vectors.new_zeros(blocks, block, block + 2 * window)
    band.scatter_(2, _band_index(window, block, vectors.device).expand(blocks, block, 2 * window), mask)
    return torch.bmm(band, windows).reshape(blocks * block, dim)[:tokens]


def context_counts(context_mask: torch.Tensor) -> torch.Tensor:
    """(T,) float: how many centres each token is a context word of (its number of skip-gram pairs as input)."""
    tokens, columns = context_mask.shape
    window = columns // 2
    mask = context_mask.to(torch.float32)
    counts = mask.new_zeros(tokens + 2 * window)
    for column, offset in enumerate(context_offsets(window)):  # centre c, context c + offset: 2W slices, not T
        counts[window + offset:window + offset + tokens] += mask[:, column]
    return counts[window:window + tokens]


def grouped_noise_scores(input_vectors: torch.Tensor, noise_vectors: torch.Tensor) -> torch.Tensor:
    """(T, S): each input vector (T, D) against the S noise vectors of its group; `noise_vectors` (G, S, D), the
    T tokens cut into G groups of T / G consecutive tokens."""
    groups, size, dim = noise_vectors.shape
    tokens = input_vectors.shape[0]
    if tokens % groups:
        raise ValueError(f"{tokens} tokens do not split into {groups} equal noise groups")
    grouped = input_vectors.view(groups, tokens // groups, dim)
    return torch.bmm(grouped, noise_vectors.transpose(1, 2)).view(tokens, size)


def negative_sampling_loss(
    positive_scores: torch.Tensor, positive_mask: torch.Tensor, input_vectors: torch.Tensor,
    input_weights: torch.Tensor, noise_vectors: torch.Tensor, negative: int, reduction: str = "mean",
) -> torch.Tensor:
    """The negative-sampling loss of a token stream's examples.

    Args:
        positive_scores: (T, M) u_o . v of the examples (skip-gram: `banded_scores`, M = 2W; CBOW: M = 1).
        positive_mask: (T, M) bool, which of them are real examples.
        input_vectors: (T, D) the input vectors v.
        input_weights: (T,) how many real examples each input vector is the input of (`context_counts`).
        noise_vectors: (G, S, D) the S noise words of each group of T / G consecutive input vectors.
        negative: K, the noise words per example in the paper's loss; each of the S shared ones weighs K / S.
        reduction: "mean" over the real examples or "sum".
    """
    positive = -(F.logsigmoid(positive_scores) * positive_mask).sum()
    noise = -F.logsigmoid(-grouped_noise_scores(input_vectors, noise_vectors)).sum(1)
    total = positive + (noise * input_weights).sum() * (negative / noise_vectors.shape[1])
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / positive_mask.sum().clamp(min=1)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


__all__ = ["banded_scores", "context_counts", "context_offsets", "grouped_noise_scores", "negative_sampling_loss",
           "window_sum"]
