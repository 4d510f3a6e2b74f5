"""Data pipelines of the patch-based pretext tasks: a batch of images -> pairs of patches (relative patch location,
Doersch et al. 2015) or shuffled 3x3 puzzles (jigsaw, Noroozi & Favaro 2016), with their labels.

Every step runs on the whole batch: one random draw of the grid positions, one indexing op that cuts every patch
(`nn.pretext.crop_tiles`), batched colour dropping / per-tile normalisation / shuffling. The geometry (a 3x3 grid of
`tile_size` tiles, `tile_gap` apart, each jittered by up to `max_jitter` px, at a random place in the image) is the
model code's (`nn.pretext`), so the jigsaw model's preview cuts its puzzles the same way.
"""

from __future__ import annotations

from typing import Sequence

import kornia.augmentation as K
import torch

from ..nn.pretext import CENTRE, NEIGHBOUR_TILES, crop_tiles, grid_tile_positions, normalize_tiles


def _stack(examples: list[dict]) -> torch.Tensor:
    return torch.stack([example["pixel_values"] for example in examples]).float().div_(255.0)


def drop_colors(patches: torch.Tensor, noise_std: float = 0.01,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Doersch et al.'s colour dropping, against chromatic aberration: in every patch (..., C, h, w) one channel,
    drawn uniformly, is kept and the others are replaced by Gaussian noise of `noise_std` times the kept channel's
    standard deviation (in that patch), so only the kept channel carries information."""
    channels = patches.shape[-3]
    keep = torch.randint(0, channels, patches.shape[:-3], generator=generator).to(patches.device)
    kept = torch.nn.functional.one_hot(keep, channels).bool()[..., None, None]  # (..., C, 1, 1)
    kept_std = patches.std(dim=(-2, -1), keepdim=True).mul(kept).sum(dim=-3, keepdim=True)  # (..., 1, 1, 1)
    noise = torch.randn(patches.shape, generator=generator).to(patches.device) * (noise_std * kept_std)
    return torch.where(kept, patches, noise)


class RelativePatchLocationCollator:
    """`[{"pixel_values": uint8 (C, S, S)}, ...]` -> `{"pixel_values": (B, 2, C, t, t), "labels": (B,)}`: the normalised
    centre patch and one uniformly drawn neighbour of every image, the neighbour's position (0..7, row-major,
    `nn.pretext.NEIGHBOUR_OFFSETS`) as its label, both patches colour-dropped if the config says so."""

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float], image_size: int, tile_size: int,
                 tile_gap: int, max_jitter: int, color_dropping: bool = True, color_drop_noise_std: float = 0.01):
        self.mean = torch.tensor(image_mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(image_std, dtype=torch.float32).view(1, -1, 1, 1)
        self.image_size, self.tile_size, self.tile_gap, self.max_jitter = image_size, tile_size, tile_gap, max_jitter
        self.color_dropping, self.color_drop_noise_std = color_dropping, color_drop_noise_std

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        images = (_stack(examples) - self.mean) / self.std
        batch = images.shape[0]
        positions = grid_tile_positions(batch, self.image_size, self.tile_size, self.tile_gap, self.max_jitter)
        labels = torch.randint(0, len(NEIGHBOUR_TILES), (batch,))
        neighbour = torch.tensor(NEIGHBOUR_TILES)[labels]
        pairs = torch.stack([positions[:, CENTRE], positions[torch.arange(batch), neighbour]], dim=1)  # (B, 2, 2)
        patches = crop_tiles(images, pairs, self.tile_size)
        if self.color_dropping:
            patches = drop_colors(patches, self.color_drop_noise_std)
        return {"pixel_values": patches, "labels": labels}


def relative_patch_location_collator(config) -> RelativePatchLocationCollator:
    return RelativePatchLocationCollator(
        config.image_mean, config.image_std, config.image_size, config.tile_size, config.tile_gap,
        config.max_jitter, config.color_dropping, config.color_drop_noise_std,
    )


class JigsawCollator:
    """`[{"pixel_values": uint8 (C, S, S)}, ...]` -> `{"pixel_values": (B, 9, C, t, t), "labels": (B,)}`: every image,
    grayscaled with `grayscale_probability`, cut into the 9 jittered tiles of a 3x3 grid with gaps, every tile
    normalised on its own (mean and std per channel), then shuffled by a permutation drawn uniformly from the set:
    `pixel_values[:, i]` is tile `permutations[label][i]` (row-major), and the label is the permutation's index."""

    def __init__(self, permutations: Sequence[Sequence[int]], image_size: int, tile_size: int, tile_gap: int,
                 max_jitter: int, grayscale_probability: float = 0.3):
        self.permutations = torch.tensor(permutations, dtype=torch.long)
        self.image_size, self.tile_size, self.tile_gap, self.max_jitter = image_size, tile_size, tile_gap, max_jitter
        self.grayscale = K.RandomGrayscale(p=grayscale_probability) if grayscale_probability > 0 else None

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        images = _stack(examples)
        if self.grayscale is not None and images.shape[1] == 3:
            with torch.no_grad():
                images = self.grayscale(images)
        batch = images.shape[0]
        positions = grid_tile_positions(batch, self.image_size, self.tile_size, self.tile_gap, self.max_jitter)
        tiles = normalize_tiles(crop_tiles(images, positions, self.tile_size))  # (B, 9, C, t, t)
        labels = torch.randint(0, len(self.permutations), (batch,))
        order = self.permutations[labels]  # (B, 9)
        shuffled = tiles[torch.arange(batch)[:, None], order]
        return {"pixel_values": shuffled, "labels": labels}


def jigsaw_collator(config) -> JigsawCollator:
    return JigsawCollator(config.permutations, config.image_size, config.tile_size, config.tile_gap,
                          config.max_jitter, config.grayscale_probability)
