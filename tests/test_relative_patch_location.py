"""Context prediction (relative patch location): the neighbour's offset against its label for all 8 positions, with
the gap and the jitter, read off an image whose pixels encode their coordinates; colour dropping; the loss against a
float64 loop; the geometry checks."""

import pytest
import torch

from hf_ssl import RelativePatchLocationConfig, RelativePatchLocationForPreTraining
from hf_ssl.data.pretext_tasks import drop_colors, relative_patch_location_collator
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.pretext import NEIGHBOUR_OFFSETS

SIZE, TILE, GAP, JITTER = 32, 6, 3, 1


def config(**kwargs) -> RelativePatchLocationConfig:
    backbone, _ = backbone_config_from_spec(kwargs.pop("backbone", "resnet-test"), image_size=SIZE)
    fields = dict(tile_size=TILE, tile_gap=GAP, max_jitter=JITTER, classifier_hidden_dim=16)
    return RelativePatchLocationConfig(backbone_config=backbone, **{**fields, **kwargs})


def coordinate_image() -> torch.Tensor:
    """uint8 (3, S, S): channel 0 holds each pixel's row, channel 1 its column, channel 2 a constant."""
    rows = torch.arange(SIZE)[:, None].expand(SIZE, SIZE)
    return torch.stack([rows, rows.T, torch.full_like(rows, 7)]).to(torch.uint8)


def test_neighbour_offset_matches_the_label_for_all_8_positions_with_gap_and_jitter():
    cfg = config(color_dropping=False, image_mean=[0.0] * 3, image_std=[1.0] * 3)
    torch.manual_seed(0)
    batch = relative_patch_location_collator(cfg)([{"pixel_values": coordinate_image()}] * 400)
    patches, labels = (batch["pixel_values"] * 255).round().long(), batch["labels"]
    assert patches.shape == (400, 2, 3, TILE, TILE)
    steps = torch.arange(TILE)
    offsets_seen = {label: set() for label in range(8)}
    for pair, label in zip(patches, labels.tolist()):
        corners = []
        for patch in pair:  # each patch is an exact crop: its pixels are its own coordinates
            top, left = patch[0, 0, 0].item(), patch[1, 0, 0].item()
            assert torch.equal(patch[0], (top + steps)[:, None].expand(TILE, TILE))
            assert torch.equal(patch[1], (left + steps)[None, :].expand(TILE, TILE))
            corners.append((top, left))
        (top_c, left_c), (top_n, left_n) = corners
        d_row, d_col = top_n - top_c, left_n - left_c
        offsets_seen[label].add((d_row, d_col))
        for delta, unit in ((d_row, NEIGHBOUR_OFFSETS[label][0]), (d_col, NEIGHBOUR_OFFSETS[label][1])):
            # nominal step (tile + gap) in the label's direction, moved by both patches' jitter
            assert abs(delta - unit * (TILE + GAP)) <= 2 * JITTER
            if unit != 0:  # never touching: at least gap - 2 x jitter pixels between the patches
                assert abs(delta) - TILE >= GAP - 2 * JITTER >= 1
    assert all(len(seen) > 1 for seen in offsets_seen.values()), "every position drawn, and jittered"


def test_color_dropping_leaves_exactly_one_informative_channel():
    generator = torch.Generator().manual_seed(0)
    patches = torch.randn(300, 2, 3, 8, 8, generator=generator) * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)
    dropped = drop_colors(patches, noise_std=0.01, generator=generator)
    kept_channels = []
    for original, out in zip(patches.flatten(0, 1), dropped.flatten(0, 1)):
        same = [c for c in range(3) if torch.equal(out[c], original[c])]
        assert len(same) == 1, same
        kept = same[0]
        kept_channels.append(kept)
        for c in set(range(3)) - {kept}:  # noise with ~1/100 of the kept channel's std, unrelated to the image
            ratio = out[c].std().item() / original[kept].std().item()
            assert 0.005 < ratio < 0.02, ratio
            assert abs(torch.corrcoef(torch.stack([out[c].flatten(), original[c].flatten()]))[0, 1]) < 0.6
    counts = torch.bincount(torch.tensor(kept_channels), minlength=3)
    assert counts.min() > 150 and counts.max() < 250, counts  # uniform over the channels, 600 patches
    pairs = torch.tensor(kept_channels).view(300, 2)
    assert 0.2 < (pairs[:, 0] == pairs[:, 1]).float().mean() < 0.5  # drawn per patch, not per pair


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_the_cross_entropy_of_the_pair_classifier(backbone):
    torch.manual_seed(0)
    model = RelativePatchLocationForPreTraining(config(backbone=backbone, tile_size=8, tile_gap=2)).eval()
    pixel_values, labels = torch.randn(5, 2, 3, 8, 8), torch.tensor([0, 3, 7, 5, 1])
    output = model(pixel_values, labels=labels)
    total = 0.0
    with torch.no_grad():
        for b in range(5):
            centre, neighbour = (model.encode(pixel_values[b, i:i + 1])[0] for i in range(2))
            logits = model.classifier(torch.cat([centre, neighbour])[None])[0].double()
            total += (torch.logsumexp(logits, 0) - logits[labels[b]]).item()
    assert output.loss.item() == pytest.approx(total / 5, rel=1e-5)
    assert output.logits.shape == (5, 8) and output.pooled_features.shape[:2] == (5, 2)


def test_geometry_is_checked():
    assert RelativePatchLocationConfig().image_size == 400  # the paper's 96 + 48 + 96 + 48 + 96 (+-7) fits
    with pytest.raises(Exception, match="needs 34 px"):
        config(tile_size=8, tile_gap=4, max_jitter=1)  # 3 x 8 + 2 x 4 + 2 x 1 = 34 > 32
    with pytest.raises(Exception, match="overlap"):
        config(tile_gap=1, max_jitter=1)
    with pytest.raises(Exception, match="multiple of the backbone's patch_size"):
        config(backbone="vit-test", tile_size=6)  # ViT patches of 4 px
