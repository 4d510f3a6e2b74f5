"""Batched image augmentations (kornia): one call augments a whole (B, C, H, W) batch, each image
with its own random parameters, on whatever device the batch is on."""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn


def random_resized_crop_flip(image_size: int, min_scale: float = 0.2, horizontal_flip: bool = True) -> nn.Module:
    """RandomResizedCrop(scale=(min_scale, 1), ratio=(3/4, 4/3)) then an optional horizontal flip: the
    augmentation of MAE (He et al. 2022) and of the linear/fine-tuning recipes of most SSL papers."""
    ops: list[nn.Module] = [K.RandomResizedCrop((image_size, image_size), scale=(min_scale, 1.0), ratio=(3 / 4, 4 / 3))]
    if horizontal_flip:
        ops.append(K.RandomHorizontalFlip())
    return K.AugmentationSequential(*ops)
