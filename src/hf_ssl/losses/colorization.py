"""The objective of Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016, Sec. 2.1-2.2): a multinomial
cross-entropy over quantised ab bins against soft-encoded targets, each pixel weighted by the rarity of its colour
(class rebalancing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_prior(counts: torch.Tensor, centres: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """p~ of the paper (Eq. 4): the empirical distribution of the bins, p = counts / sum(counts) (uniform while
    nothing is counted), smoothed with a Gaussian kernel G_sigma in ab space (sigma in ab units, 5 in the paper) and
    renormalised: p~_q = sum_r G(|c_q - c_r|) p_r / sum_q' sum_r G(|c_q' - c_r|) p_r. (Mass the kernel would spread
    onto cells outside the bins is dropped, as a histogram filtered on the full grid and cut to the gamut.)
    float64, (Q,)."""
    counts = counts.to(torch.float64)
    total = counts.sum()
    p = counts / total if total > 0 else torch.full_like(counts, 1.0 / counts.numel())
    centres = centres.to(torch.float64)
    kernel = torch.exp(-torch.cdist(centres, centres).square() / (2 * sigma**2))
    smoothed = kernel @ p
    return smoothed / smoothed.sum()


def rebalancing_weights(prior: torch.Tensor, mixing: float = 0.5) -> torch.Tensor:
    """The class-rebalancing weights of the paper (Eq. 4): w proportional to ((1 - lambda) p~ + lambda / Q)^-1,
    normalised so that E_p~[w] = sum_q p~_q w_q = 1. `prior` is p~ (Q,), `mixing` is lambda (0.5 in the paper);
    lambda = 1 weighs every bin equally (no rebalancing), lambda = 0 divides by the prior."""
    weights = 1.0 / ((1.0 - mixing) * prior + mixing / prior.numel())
    return weights / (prior * weights).sum()


def colorization_loss(logits: torch.Tensor, target_indices: torch.Tensor, target_weights: torch.Tensor,
                      pixel_weights: torch.Tensor) -> torch.Tensor:
    """The paper's loss (Eq. 2): L = -sum_{h,w} v(Z_hw) sum_q Z_hwq log Z^_hwq, averaged over the pixels (the mean
    instead of the sum only rescales the learning rate; with E[w] = 1 it is an ordinary cross-entropy in size).

    logits: (B, Q, H, W) scores of the Q bins at every pixel (Z^ = their softmax).
    target_indices, target_weights: (B, H, W, K) the soft-encoded target Z (its K non-zero bins and their mass).
    pixel_weights: (B, H, W) v(Z_hw) = w of the pixel's most likely bin (argmax_q Z_hwq, its nearest bin).
    """
    log_probs = F.log_softmax(logits.float(), dim=1)
    picked = log_probs.gather(1, target_indices.movedim(-1, 1))  # (B, K, H, W): log Z^ at the target's bins
    cross_entropy = -(target_weights.movedim(-1, 1).to(picked.dtype) * picked).sum(dim=1)
    return (pixel_weights.to(cross_entropy.dtype) * cross_entropy).mean()


__all__ = ["colorization_loss", "rebalancing_weights", "smoothed_prior"]
