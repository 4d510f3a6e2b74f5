"""Images <-> sequences of flattened patches, and fixed 2-D sin-cos position embeddings."""

from __future__ import annotations

import torch


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, patch_size**2 * C), patches in row-major order, pixels (p, q, c) inside.

    The layout matches the reference MAE code, so reconstructions can be compared one to one.
    """
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, num_channels: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`patchify`."""
    b = patches.shape[0]
    p = patch_size
    x = patches.reshape(b, height // p, width // p, p, p, num_channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(b, num_channels, height, width)


def patch_mask_to_pixels(mask: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """(B, N) per-patch mask, patches row-major as :func:`patchify` orders them -> (B, 1, H, W) bool per pixel."""
    grid = mask.bool().view(mask.shape[0], 1, height // patch_size, width // patch_size)
    return grid.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def sincos_position_embedding(dim: int, grid_size: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings (Vaswani et al. 2017 in 2-D, as used by MAE).

    Half of the channels encode the row, half the column. Returns (1, [1 +] grid_size**2, dim), with a
    zero row for the [CLS] token when ``cls_token``.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {dim}")
    coords = torch.arange(grid_size, dtype=torch.float64)
    grid_w, grid_h = torch.meshgrid(coords, coords, indexing="xy")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    embedding = torch.cat([encode(grid_w), encode(grid_h)], dim=1)
    if cls_token:
        embedding = torch.cat([torch.zeros(1, dim, dtype=torch.float64), embedding], dim=0)
    return embedding.float().unsqueeze(0)
