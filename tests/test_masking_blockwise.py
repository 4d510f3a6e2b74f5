"""BEiT's blockwise masking (Algorithm 1) and SimMIM's patch-aligned random masking: ratios, block shapes,
and agreement with a plain transcription of the reference algorithm."""

import math
import random

import pytest
import torch

from hf_ssl.nn.masking import blockwise_masking, patch_aligned_random_masking


def reference_blockwise_mask(rng: random.Random, height: int, width: int, num_masking: int, min_block: int,
                             min_aspect: float = 0.3) -> list[list[int]]:
    """BEiT's Algorithm 1 as the reference `MaskingGenerator` writes it, one sample, plain Python."""
    mask = [[0] * width for _ in range(height)]
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    count = 0
    while count < num_masking:
        budget = num_masking - count
        delta = 0
        for _ in range(10):
            area = rng.uniform(min_block, budget)
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top, left = rng.randint(0, height - h), rng.randint(0, width - w)
                new = sum(1 - mask[i][j] for i in range(top, top + h) for j in range(left, left + w))
                if 0 < new <= budget:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            mask[i][j] = 1
                    delta = new
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return mask


def connected_components(mask: list[list[int]]) -> int:
    height, width = len(mask), len(mask[0])
    seen, components = set(), 0
    for i in range(height):
        for j in range(width):
            if mask[i][j] and (i, j) not in seen:
                components += 1
                stack = [(i, j)]
                while stack:
                    a, b = stack.pop()
                    if (a, b) in seen or not (0 <= a < height and 0 <= b < width) or not mask[a][b]:
                        continue
                    seen.add((a, b))
                    stack += [(a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)]
    return components


def test_mask_ratio_near_the_target_and_never_above():
    generator = torch.Generator().manual_seed(0)
    masks = blockwise_masking(2000, 14, 75, min_block_patches=16, generator=generator)   # BEiT: 75 of 196
    counts = masks.sum(dim=1).float()
    assert masks.shape == (2000, 196) and masks.dtype == torch.bool
    assert counts.max() <= 75
    assert 0.37 <= counts.mean().item() / 196 <= 75 / 196          # ~40%, a little below when a sample gets stuck
    assert (counts == 75).float().mean() > 0.5                     # most samples reach the target exactly
    frequency = masks.float().mean(dim=0)
    assert frequency.min() > 0.02 and frequency.max() < 0.8        # every position gets masked (corners least), none always


def test_statistics_match_a_plain_transcription_of_algorithm_1():
    """Vectorised over the batch, the draw must follow the same distribution as the reference's loop per sample:
    same masked counts, same share of samples reaching the target, same number of separate blocks."""
    rng = random.Random(0)
    reference = [reference_blockwise_mask(rng, 14, 14, 75, 16) for _ in range(600)]
    ours = blockwise_masking(600, 14, 75, min_block_patches=16, generator=torch.Generator().manual_seed(1))
    ours = [m.view(14, 14).int().tolist() for m in ours]
    statistics = ((lambda m: sum(map(sum, m)), 1.0), (lambda m: float(sum(map(sum, m)) == 75), 0.08),
                  (connected_components, 0.25))
    for statistic, tolerance in statistics:
        mean_reference = sum(map(statistic, reference)) / len(reference)
        mean_ours = sum(map(statistic, ours)) / len(ours)
        assert abs(mean_ours - mean_reference) < tolerance, (mean_ours, mean_reference)


def test_blocks_are_filled_rectangles_with_the_paper_aspect_ratios():
    """With a budget of one block (area = min = target = 16), a mask is one filled rectangle whose side ratio is
    within [0.3, 1/0.3] up to the rounding of the sides, in both orientations."""
    masks = blockwise_masking(2000, 14, 16, min_block_patches=16, generator=torch.Generator().manual_seed(0))
    masks = masks.view(-1, 14, 14)
    ratios = []
    for mask in masks:
        rows = torch.nonzero(mask.any(dim=1)).flatten()
        cols = torch.nonzero(mask.any(dim=0)).flatten()
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        if mask.sum() == h * w:                                     # exactly one filled rectangle
            ratios.append(h.item() / w.item())
    assert len(ratios) > 0.6 * len(masks)                           # most: a second block needs a tiny gap
    assert min(ratios) >= 0.3 * 0.6 and max(ratios) <= (1 / 0.3) / 0.6   # rounding of sides ~sqrt(16 r)
    assert min(ratios) < 0.5 and max(ratios) > 2.0                  # both orientations, elongated ones included
    assert abs(sum(math.log(r) for r in ratios) / len(ratios)) < 0.1   # log-uniform: symmetric around square


def test_reproducible_with_a_generator_and_terminates_when_nothing_fits():
    def draw(seed):
        return blockwise_masking(8, 8, 25, min_block_patches=4, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
    # 4x4 grid, blocks of at least 16 patches: no block ever fits (sides must stay below 4), yet it returns
    masks = blockwise_masking(16, 4, 6, min_block_patches=16, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (16, 16) and masks.sum(dim=1).max() <= 6


def test_patch_aligned_random_masking_masks_whole_mask_patches():
    generator = torch.Generator().manual_seed(0)
    masks = patch_aligned_random_masking(500, 32, 8, 4, 0.6, generator=generator).view(500, 8, 8)
    cells = masks.view(500, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(500, 16, 4)
    assert torch.all(cells.all(-1) | ~cells.any(-1))                  # every 2x2 group of patches all or nothing
    assert torch.all(cells.all(-1).sum(-1) == math.ceil(16 * 0.6))    # ceil(0.6 x 16) = 10 mask patches each
    frequency = cells.all(-1).float().mean(0)
    assert torch.all((frequency - 10 / 16).abs() < 0.1)               # uniform over the positions


@pytest.mark.parametrize("ratio", [0.1, 0.6, 0.9])
def test_patch_aligned_count_is_the_reference_ceil(ratio):
    masks = patch_aligned_random_masking(4, 192, 32, 4, ratio, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (4, 48 * 48)
    assert torch.all(masks.sum(1) == math.ceil(36 * ratio) * 64)
