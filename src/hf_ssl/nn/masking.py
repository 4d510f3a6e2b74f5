"""Patch masking schemes shared by masked-image-modelling methods."""

from __future__ import annotations

import torch


def random_masking(
    batch_size: int, num_patches: int, mask_ratio: float, device: torch.device | str | None = None,
    generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample uniform random masking without replacement (MAE, He et al. 2022, Sec. 3).

    Exactly ``num_patches - int(num_patches * (1 - mask_ratio))`` patches are masked in every
    sample, so the visible set has a fixed length and the encoder runs on a dense tensor.

    ``noise`` (B, N), if given, decides the masks (the patches with the smallest noise stay visible);
    transformers' `ViTMAEForPreTraining` takes the same argument, so both draw identical masks.

    Returns:
        ids_keep: (B, K) indices of the visible patches, in shuffled order.
        mask: (B, N) float, 1 for masked patches, 0 for visible ones, in the original patch order.
        ids_restore: (B, N) permutation that undoes the shuffle (gather with it to unshuffle).
    """
    num_keep = int(num_patches * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(batch_size, num_patches, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :num_keep]
    mask = torch.ones(batch_size, num_patches, device=device)
    mask[:, :num_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_keep, mask, ids_restore


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``tokens[b, ids[b, i], :]`` for a (B, N, D) tensor and (B, K) indices."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
