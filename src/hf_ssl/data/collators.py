"""Collators: lists of dataset examples -> model batches.

Images are stored as uint8 (C, H, W) tensors at the model's size; a collator stacks them, augments
the whole batch at once and normalises it, so the per-image Python work is one indexing op.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ImageCollator:
    """`[{"pixel_values": uint8 (C,H,W)}, ...]` -> `{"pixel_values": float (B,C,H,W)}`, augmented and normalised."""

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float], augment: nn.Module | None = None):
        self.mean = torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        images = torch.stack([example["pixel_values"] for example in examples]).float().div_(255.0)
        if self.augment is not None:
            with torch.no_grad():
                images = self.augment(images)
        return {"pixel_values": (images - self.mean) / self.std}


class UInt8ImageDataset(torch.utils.data.Dataset):
    """A uint8 image tensor (N, C, H, W) as a map-style dataset of `{"pixel_values": ...}` examples."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[index]}
