"""Pixel normalisation, written once: what the exported image processor does to an image.

transformers' ``ViTImageProcessor(do_rescale=True, rescale_factor=1/255, do_normalize=True)`` divides uint8 pixels
by 255, then subtracts the per-channel mean and divides by the per-channel std. Every place that feeds pixels to a
model (the training collators, feature extraction, the fine-tuning collator, the reconstruction plots) goes through
:class:`PixelNormalization`, in float32 and in that order of operations, so that what a model sees in training and
evaluation is bit for bit what the exported processor gives downstream users.

It lives in ``nn/`` (model code) because models use it too: the semi-supervised methods normalise the strong
augmentation they run on the training device, and model code may import only ``modeling/``, ``nn/``, ``losses/``
(what ``OUT/ssl`` carries). ``hf_ssl.data.normalization`` re-exports it for the data pipeline's old imports.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["PixelNormalization", "rescale_pixels"]


def rescale_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) -> a new float32 tensor in [0, 1] (``images.float() / 255``); float input, already in
    [0, 1], is returned as it is."""
    if images.is_floating_point():
        return images
    return images.float().div_(255.0)


class PixelNormalization:
    """``(images / 255 - mean) / std`` on (B, C, H, W) batches, per channel, in float32.

    Calling it on uint8 pixels rescales them first (:func:`rescale_pixels`); float pixels must already be in [0, 1]
    (e.g. after a batched augmentation of the rescaled batch). The mean and std follow the batch's device.
    :meth:`invert` maps normalised pixels back to [0, 1] units (``x * std + mean``), for pictures.
    """

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float]):
        self.mean = torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1)

    def _statistics(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean.to(device), self.std.to(device)  # no copy when already there

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean, std = self._statistics(images.device)
        return (rescale_pixels(images) - mean) / std

    def invert(self, pixel_values: torch.Tensor) -> torch.Tensor:
        mean, std = self._statistics(pixel_values.device)
        return pixel_values * std + mean
