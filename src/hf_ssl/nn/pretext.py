"""Building blocks of the transformation-prediction pretext tasks: image rotations (Gidaris et al. 2018), a 3x3 grid
of jittered tiles with gaps (Doersch et al. 2015; Noroozi & Favaro 2016), per-tile normalisation, and the jigsaw
permutation set chosen by maximal Hamming distance (Noroozi & Favaro 2016, Algorithm 1).

Everything works on whole batches (no per-image Python loop) and takes an optional CPU `torch.Generator` for its random
draws. Images are (B, C, H, W) floats; tiles are (B, T, C, t, t) with T = grid * grid in row-major order.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

NUM_ROTATIONS = 4  # 0, 90, 180, 270 degrees
GRID = 3  # the 3x3 grid of both context prediction and the jigsaw puzzle
CENTRE = GRID * GRID // 2  # row-major index of the centre tile
# The 8 neighbours of the centre tile, in the order of their labels 0..7: (row offset, column offset), row-major.
NEIGHBOUR_OFFSETS = tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
NEIGHBOUR_TILES = tuple((1 + dr) * GRID + (1 + dc) for dr, dc in NEIGHBOUR_OFFSETS)  # their row-major tile indices


def rotate_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) square images -> ((4B, C, H, W), (4B,) labels): every image rotated by 0, 90, 180 and 270 degrees
    (counter-clockwise, `torch.rot90` on the last two dims), rotation-major: all images unrotated, then all rotated
    by 90 degrees, ... Label k means k x 90 degrees."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotations need square images, got {tuple(images.shape[-2:])}")
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(NUM_ROTATIONS)])
    labels = torch.arange(NUM_ROTATIONS, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


def rotate_each(images: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Rotate image b by `rotations[b]` x 90 degrees (counter-clockwise; negative values turn back)."""
    out = images.clone()
    for k in range(NUM_ROTATIONS):  # four batched rotations, not one per image
        chosen = rotations.remainder(NUM_ROTATIONS) == k
        if chosen.any():
            out[chosen] = torch.rot90(images[chosen], k, dims=(-2, -1))
    return out


def grid_span(tile_size: int, tile_gap: int) -> int:
    """Side of the 3x3 grid of tiles at their nominal positions: 3 tiles and 2 gaps."""
    return GRID * tile_size + (GRID - 1) * tile_gap


def check_grid_geometry(image_size: int, tile_size: int, tile_gap: int, max_jitter: int) -> None:
    """The checks of a tile grid: positive tile, a gap, jitter that never makes tiles overlap (gap >= 2 x jitter), and
    the jittered grid inside the image. Raises ValueError naming the values."""
    if tile_size < 1 or tile_gap < 1 or max_jitter < 0:
        raise ValueError(f"need tile_size >= 1, tile_gap >= 1, max_jitter >= 0; got {tile_size}, {tile_gap}, "
                         f"{max_jitter}")
    if tile_gap < 2 * max_jitter:
        raise ValueError(f"tile_gap {tile_gap} < 2 x max_jitter {max_jitter}: jittered tiles could touch or overlap")
    need = grid_span(tile_size, tile_gap) + 2 * max_jitter
    if need > image_size:
        raise ValueError(f"a 3x3 grid of {tile_size} px tiles with {tile_gap} px gaps and +-{max_jitter} px jitter "
                         f"needs {need} px, more than image_size {image_size}")


def grid_tile_positions(batch_size: int, image_size: int, tile_size: int, tile_gap: int, max_jitter: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 9, 2) top-left (row, column) of the 9 tiles of each image, row-major. The grid (3 tiles, 2 gaps of
    `tile_gap`) is placed at a random position of the image (the papers' random crop), then every tile moves by its
    own jitter, uniform in [-max_jitter, max_jitter] per axis."""
    span = grid_span(tile_size, tile_gap)
    slack = image_size - span - 2 * max_jitter  # room left for the grid's random placement
    origin = max_jitter + torch.randint(0, slack + 1, (batch_size, 1, 2), generator=generator)
    steps = torch.arange(GRID) * (tile_size + tile_gap)
    nominal = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).reshape(1, GRID * GRID, 2)
    jitter = torch.randint(-max_jitter, max_jitter + 1, (batch_size, GRID * GRID, 2), generator=generator)
    return origin + nominal + jitter


def crop_tiles(images: torch.Tensor, positions: torch.Tensor, tile_size: int) -> torch.Tensor:
    """(B, C, H, W) images and (B, T, 2) top-left positions -> (B, T, C, tile, tile) crops, in one indexing op."""
    positions = positions.to(images.device)
    offsets = torch.arange(tile_size, device=images.device)
    rows = (positions[..., 0, None] + offsets)[:, :, :, None]  # (B, T, t, 1)
    cols = (positions[..., 1, None] + offsets)[:, :, None, :]  # (B, T, 1, t)
    batch = torch.arange(images.shape[0], device=images.device)[:, None, None, None]
    return images.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 1, 4, 2, 3)  # (B, T, t, t, C) -> (B, T, C, t, t)


def normalize_tiles(tiles: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Every tile (B, T, C, t, t) to zero mean and unit std per channel on its own (Noroozi & Favaro 2016, Sec. 3.3:
    no shortcut through the tiles' mean brightness and contrast); a flat channel keeps std 1."""
    mean = tiles.mean(dim=(-2, -1), keepdim=True)
    std = tiles.std(dim=(-2, -1), keepdim=True) if tiles.shape[-1] * tiles.shape[-2] > 1 else torch.ones_like(mean)
    return (tiles - mean) / torch.where(std > eps, std, torch.ones_like(std))


def assemble_tiles(tiles: torch.Tensor, image_size: int, tile_gap: int, fill: float = 0.0) -> torch.Tensor:
    """(B, 9, C, t, t) tiles -> (B, C, S, S) images with the tiles at their nominal grid positions, centred, `fill`
    in the gaps and the margin (the card's view of a puzzle)."""
    batch, _, channels, tile, _ = tiles.shape
    out = tiles.new_full((batch, channels, image_size, image_size), fill)
    start = (image_size - grid_span(tile, tile_gap)) // 2
    for index in range(GRID * GRID):  # nine slices, each over the whole batch
        row, col = divmod(index, GRID)
        top, left = start + row * (tile + tile_gap), start + col * (tile + tile_gap)
        out[:, :, top:top + tile, left:left + tile] = tiles[:, index]
    return out


def maximal_hamming_permutations(num_permutations: int, num_tiles: int = GRID * GRID, seed: int = 0) -> list[list[int]]:
    """The jigsaw permutation set of Noroozi & Favaro 2016, Algorithm 1 (greedy maximal Hamming distance): start from a
    random permutation of all `num_tiles`! (drawn with `seed`), then repeatedly add the remaining permutation whose
    average Hamming distance to the permutations chosen so far is largest (ties: the first in lexicographic order).
    The running sums are updated once per added permutation (9 vector additions), so 1,000 of 9! take seconds."""
    candidates = np.array(list(itertools.permutations(range(num_tiles))), dtype=np.int8)
    if not 1 <= num_permutations <= len(candidates):
        raise ValueError(f"num_permutations must be in [1, {len(candidates)}], got {num_permutations}")
    # Hamming distance = num_tiles - matching positions, so the largest summed distance to the chosen set is the
    # smallest summed number of matches; equal[i, v] marks the candidates with tile v at position i.
    equal = candidates.T[:, None, :] == np.arange(num_tiles, dtype=np.int8)[None, :, None]
    matches = np.zeros(len(candidates), dtype=np.int32)
    taken = 1 << 30  # added to a chosen permutation's count; far above num_tiles * num_permutations matches
    index = int(np.random.default_rng(seed).integers(len(candidates)))
    chosen = []
    for _ in range(num_permutations):
        permutation = candidates[index]
        chosen.append(permutation.tolist())
        for position, tile in enumerate(permutation):
            matches += equal[position, tile]
        matches[index] += taken  # never chosen again
        index = int(np.argmin(matches))
    return chosen


__all__ = [
    "CENTRE", "GRID", "NEIGHBOUR_OFFSETS", "NEIGHBOUR_TILES", "NUM_ROTATIONS", "assemble_tiles", "check_grid_geometry",
    "crop_tiles", "grid_span", "grid_tile_positions", "maximal_hamming_permutations", "normalize_tiles",
    "rotate_batch", "rotate_each",
]
