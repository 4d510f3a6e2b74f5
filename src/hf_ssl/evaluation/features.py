"""Frozen features of an encoder on a uint8 image tensor, in batches."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from transformers import PreTrainedModel

from ..nn.normalization import PixelNormalization, rescale_pixels
from ..nn.backbone import pooled_features


@torch.no_grad()
def extract_features(
    encoder: PreTrainedModel, images: torch.Tensor, image_mean: Sequence[float], image_std: Sequence[float],
    pooling: str = "auto", batch_size: int = 256, embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(N, C, H, W) uint8 images -> (N, D) float32 features, normalised exactly like the exported image
    processor does (rescale to [0, 1], then mean/std). bf16 autocast on GPUs that support it.

    `embed` maps a normalised pixel batch to features (default: the backbone's pooled features; CLIP: its
    projected image embedding)."""
    encoder.eval()
    device = next(encoder.parameters()).device
    normalize = PixelNormalization(image_mean, image_std)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = rescale_pixels(images[start : start + batch_size].to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            pixels = normalize(batch)
            features = embed(pixels) if embed is not None else pooled_features(encoder, pixels, pooling)
        chunks.append(features.float().cpu())
    return torch.cat(chunks)
