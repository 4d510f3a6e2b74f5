"""Pixel reconstruction loss on masked patches (MAE, He et al. 2022, Sec. 3 "Reconstruction target")."""

from __future__ import annotations

import torch


def masked_reconstruction_loss(
    prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, normalize_target: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Mean squared error per patch, averaged over the masked patches only.

    Args:
        prediction, target: (B, N, P) flattened patches.
        mask: (B, N), 1 where a patch was masked (and so is scored), 0 where it was visible.
        normalize_target: normalise each target patch by its own mean and variance first (the paper's
            "normalized pixels" target, which improves representations).

    The loss is per-sample (no statistics across the batch), so it needs no cross-process gather.
    """
    if normalize_target:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + eps) ** 0.5
    per_patch = ((prediction.float() - target.float()) ** 2).mean(dim=-1)
    mask = mask.float()
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


def masked_l1_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SimMIM's loss (Xie et al. 2022, Sec. 3): mean absolute error over the pixels of masked patches only.

    Args:
        prediction, target: (B, N, P) flattened patches (all patches have the same P pixel values).
        mask: (B, N), 1 where a patch was masked (scored), 0 where it was visible.

    The mean over every masked pixel value of the batch, which is what the reference computes on images
    (`(l1 * pixel_mask).sum() / pixel_mask.sum() / channels`), written on patches.
    """
    per_patch = (prediction.float() - target.float()).abs().mean(dim=-1)
    mask = mask.float()
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)
