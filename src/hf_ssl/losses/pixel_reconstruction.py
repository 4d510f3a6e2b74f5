"""Pixel reconstruction losses of the autoencoders and the context encoder."""

from __future__ import annotations

import torch


def pixel_mse_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between predicted and true pixels (B, C, H, W).

    weight: None (every pixel counts once: the autoencoder's loss) or (B, 1, H, W) non-negative weights, 0 outside
        the scored region (the context encoder: 1 on the hidden region, a larger weight on its overlap border). The
        weighted sum of squared errors is divided by the number of scored values (C x the pixels with weight > 0),
        as the context encoder's reference code scales the MSE gradient by its weight matrix.
    """
    squared = (prediction.float() - target.float()) ** 2
    if weight is None:
        return squared.mean()
    weight = weight.float()
    count = (weight > 0).sum() * prediction.shape[1]
    return (squared * weight).sum() / count.clamp_min(1)


__all__ = ["pixel_mse_loss"]
