"""Jigsaw puzzles: the permutation set against a plain transcription of the paper's Algorithm 1, the puzzles of the
collator (tiles put back by the inverse permutation are the jittered crops of a 3x3 grid with gaps; labels index the
set; per-tile normalisation), the loss against a float64 loop, the card's preview, the config's permutation list."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from hf_ssl import JigsawConfig, JigsawForPreTraining
from hf_ssl.data.pretext_tasks import jigsaw_collator
from hf_ssl.modeling.image_method import method_config_fields
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.pretext import assemble_tiles, crop_tiles, grid_tile_positions, maximal_hamming_permutations

SIZE, TILE, GAP, JITTER = 32, 6, 3, 1


def config(**kwargs) -> JigsawConfig:
    backbone, _ = backbone_config_from_spec(kwargs.pop("backbone", "resnet-test"), image_size=SIZE)
    fields = dict(tile_size=TILE, tile_gap=GAP, max_jitter=JITTER, tile_embedding_dim=8, classifier_hidden_dim=16)
    return JigsawConfig(backbone_config=backbone, **{**fields, **kwargs})


def hamming(p, q) -> int:
    return sum(a != b for a, b in zip(p, q))


def greedy_reference(num_tiles: int, count: int, first: tuple) -> list[tuple]:
    """Algorithm 1 written out with loops: add the remaining permutation with the largest average Hamming distance to
    the chosen ones (the first such in lexicographic order), starting from `first`."""
    remaining = list(itertools.permutations(range(num_tiles)))
    chosen = [first]
    remaining.remove(first)
    while len(chosen) < count:
        best, best_total = None, -1
        for candidate in remaining:
            total = sum(hamming(candidate, p) for p in chosen)  # the average's numerator: same denominator for all
            if total > best_total:
                best, best_total = candidate, total
        chosen.append(best)
        remaining.remove(best)
    return chosen


def min_pairwise_hamming(perms) -> int:
    return min(hamming(p, q) for p, q in itertools.combinations(perms, 2))


def test_permutation_set_is_algorithm_1():
    for num_tiles, count, seed in ((5, 15, 0), (6, 20, 3)):
        ours = [tuple(p) for p in maximal_hamming_permutations(count, num_tiles, seed)]
        assert ours == greedy_reference(num_tiles, count, ours[0])
        assert len(set(ours)) == count
    assert maximal_hamming_permutations(3, 9, seed=0)[0] != maximal_hamming_permutations(3, 9, seed=1)[0]


def test_default_100_permutations_of_9_tiles_reach_the_reference_minimum_distance():
    perms = config().permutations
    assert len(perms) == 100 and len({tuple(p) for p in perms}) == 100
    assert all(sorted(p) == list(range(9)) for p in perms)
    # the reference run on all 9! permutations: loops over the greedy steps, numpy over the candidates
    candidates = np.array(list(itertools.permutations(range(9))), dtype=np.int8)
    first = np.array(perms[0], dtype=np.int8)
    keep = ~(candidates == first).all(axis=1)
    candidates, chosen = candidates[keep], [first]
    totals = np.zeros(len(candidates), dtype=np.int64)
    for _ in range(99):
        totals += (candidates != chosen[-1]).sum(axis=1)
        best = int(np.argmax(totals))
        chosen.append(candidates[best])
        candidates, totals = np.delete(candidates, best, axis=0), np.delete(totals, best)
    reference = [p.tolist() for p in chosen]
    assert min_pairwise_hamming(perms) == min_pairwise_hamming(reference)
    assert perms == reference


def find_crops(tiles: torch.Tensor, candidates: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """(T, C, t, t) tiles -> (T, 2) top-left corners of the candidate crops they equal."""
    distances = torch.cdist(tiles.flatten(1).double(), candidates.flatten(1).double())
    best = distances.argmin(dim=1)
    assert distances.gather(1, best[:, None]).max() < 1e-3, "a tile is not a crop of the image"
    return corners[best]


def test_tiles_put_back_by_the_inverse_permutation_are_the_jittered_crops_and_labels_index_the_set():
    cfg = config(grayscale_probability=0.0)
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8)  # random pixels: every crop is unique
    batch = jigsaw_collator(cfg)([{"pixel_values": image}] * 40)
    tiles, labels = batch["pixel_values"], batch["labels"]
    assert tiles.shape == (40, 9, 3, TILE, TILE) and labels.dtype == torch.long
    assert 0 <= labels.min() and labels.max() < 100 and len(set(labels.tolist())) > 25
    # every tile normalised on its own, per channel
    torch.testing.assert_close(tiles.mean(dim=(-2, -1)), torch.zeros(40, 9, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(tiles.std(dim=(-2, -1)), torch.ones(40, 9, 3), atol=1e-4, rtol=0)
    # every possible crop of the image, normalised the same way
    corners = [(r, c) for r in range(SIZE - TILE + 1) for c in range(SIZE - TILE + 1)]
    crops = crop_tiles(image[None].float() / 255, torch.tensor([corners]), TILE)[0]
    crops = (crops - crops.mean(dim=(-2, -1), keepdim=True)) / crops.std(dim=(-2, -1), keepdim=True)
    jitters = set()
    for puzzle, label in zip(tiles, labels.tolist()):
        inverse = torch.tensor(cfg.permutations[label]).argsort()
        restored = puzzle[inverse]  # position i of the puzzle held tile permutations[label][i]
        grid = torch.tensor([divmod(index, 3) for index in range(9)]) * (TILE + GAP)
        origins = find_crops(restored, crops, torch.tensor(corners)) - grid  # where each tile says the grid starts
        spread = origins.amax(dim=0) - origins.amin(dim=0)
        assert (spread <= 2 * JITTER).all(), origins  # the 3x3 grid, each tile within its jitter
        jitters.add(tuple(spread.tolist()))
    assert len(jitters) > 1


def test_grayscale_puzzles():
    batch = jigsaw_collator(config(grayscale_probability=1.0))(
        [{"pixel_values": torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8)} for _ in range(4)])
    tiles = batch["pixel_values"]
    torch.testing.assert_close(tiles[:, :, 0], tiles[:, :, 1], atol=1e-4, rtol=0)
    torch.testing.assert_close(tiles[:, :, 0], tiles[:, :, 2], atol=1e-4, rtol=0)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_the_cross_entropy_of_the_permutation_classifier(backbone):
    torch.manual_seed(0)
    model = JigsawForPreTraining(config(backbone=backbone, tile_size=8, tile_gap=2)).eval()
    pixel_values, labels = torch.randn(3, 9, 3, 8, 8), torch.tensor([0, 42, 99])
    output = model(pixel_values, labels=labels)
    total = 0.0
    with torch.no_grad():
        for b in range(3):  # fc6 on each tile alone, concatenated in puzzle order, fc7 + fc8
            embedded = [model.tile_embedding(model.encode(pixel_values[b, i:i + 1]))[0] for i in range(9)]
            logits = model.classifier(torch.cat(embedded)[None])[0].double()
            total += (torch.logsumexp(logits, 0) - logits[labels[b]]).item()
    assert output.loss.item() == pytest.approx(total / 3, rel=1e-5)
    assert output.logits.shape == (3, 100)


class FixedAnswer(nn.Module):
    def __init__(self, answers: torch.Tensor, num_classes: int):
        super().__init__()
        self.logits = nn.functional.one_hot(answers, num_classes).float() * 10

    def forward(self, x):
        return self.logits


def test_preview_shows_the_shuffled_puzzle_and_puts_tiles_back_by_the_prediction():
    torch.manual_seed(0)
    model = JigsawForPreTraining(config()).eval()
    images = torch.randn(4, 3, SIZE, SIZE)
    generator = torch.Generator().manual_seed(0)  # the preview's draws, in its order: grid positions, permutations
    positions = grid_tile_positions(4, SIZE, TILE, GAP, JITTER, generator=generator)
    drawn = torch.randint(0, 100, (4,), generator=generator)
    crops = crop_tiles(images, positions, TILE)
    perms = torch.tensor(model.config.permutations)
    shuffled = assemble_tiles(crops[torch.arange(4)[:, None], perms[drawn]], SIZE, GAP)
    for answers, expected in ((drawn, assemble_tiles(crops, SIZE, GAP)), ((drawn + 1) % 100, None)):
        model.classifier = FixedAnswer(answers, 100)
        preview = model.preview(images, generator=torch.Generator().manual_seed(0))
        assert torch.equal(preview.model_input, shuffled)
        if expected is not None:  # the right permutation: every tile back at its place
            assert torch.equal(preview.reconstruction, expected)
        else:
            assert not torch.equal(preview.reconstruction, assemble_tiles(crops, SIZE, GAP))
    assert preview.row_labels == ("original", "shuffled tiles", "predicted order")


def test_config_keeps_its_permutation_list(tmp_path):
    cfg = config(num_permutations=10, permutation_seed=5)
    cfg.save_pretrained(tmp_path)
    again = JigsawConfig.from_pretrained(tmp_path)
    assert again.permutations == cfg.permutations == maximal_hamming_permutations(10, 9, seed=5)
    assert "permutations" not in method_config_fields(JigsawConfig)  # derived: no CLI flag, not a card field
    perms = cfg.permutations
    for bad, message in (([perms[0]] + perms[:9], "duplicates"), (perms[:9], "holds 9"),
                         ([[0] * 9] + perms[1:], "permutation of 0..8")):
        with pytest.raises(Exception, match=message):
            config(num_permutations=10, permutations=bad)
    with pytest.raises(Exception, match="multiple of the backbone's patch_size"):
        config(backbone="vit-test")  # 6 px tiles, 4 px ViT patches
    with pytest.raises(Exception, match="needs"):
        config(tile_size=8, tile_gap=4)
