"""Colorization (Zhang et al. 2016): Lab conversion against scikit-image, the computed ab bins, soft encoding, the
rebalancing weights and the loss against float64 loops of the paper's formulas, the annealed mean, the running
prior, the decoding of the card's plot, and the refusal of grayscale data."""

import math

import numpy as np
import pytest
import torch

from conftest import run_cli
from hf_ssl import ColorizationConfig, ColorizationForPreTraining
from hf_ssl.data.collators import ColorImageCollator, is_grayscale
from hf_ssl.errors import HfSslError
from hf_ssl.losses.colorization import colorization_loss, rebalancing_weights, smoothed_prior
from hf_ssl.nn.backbone import feature_map
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.color import (ab_bins, annealed_mean, lab_to_linear_rgb, lab_to_rgb, lightness_to_rgb, rgb_to_lab,
                             soft_encode)

CENTRES = ab_bins(10)


def tiny_model(spec: str = "resnet-test", **kwargs) -> ColorizationForPreTraining:
    overrides = dict(image_size=16, patch_size=4) if spec.startswith("vit") else dict(image_size=16)
    backbone, _ = backbone_config_from_spec(spec, **overrides)
    torch.manual_seed(0)
    return ColorizationForPreTraining(ColorizationConfig(backbone_config=backbone, **kwargs))


def normalized(rgb: torch.Tensor, config: ColorizationConfig) -> torch.Tensor:
    mean = torch.tensor(config.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(config.image_std).view(1, 3, 1, 1)
    return (rgb - mean) / std


def test_lab_conversion_matches_scikit_image_in_float64():
    color = pytest.importorskip("skimage.color")
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(3, 20, 20, generator=generator, dtype=torch.float64)  # 400 random colours
    rgb[:, 0, :8] = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0, 1, 1], [0, 1, 0, 1, 0, 1, 0, 1]])
    expected = color.rgb2lab(rgb.permute(1, 2, 0).numpy())
    lab = rgb_to_lab(rgb)
    np.testing.assert_allclose(lab.permute(1, 2, 0).numpy(), expected, atol=1e-9)
    # back: scikit-image's lab2rgb on the same colours and on Lab values of which some are out of gamut (clipped)
    lab_samples = torch.stack([torch.rand(400, dtype=torch.float64, generator=generator) * 80 + 10,
                               torch.rand(400, dtype=torch.float64, generator=generator) * 100 - 50,
                               torch.rand(400, dtype=torch.float64, generator=generator) * 100 - 50]).view(3, 20, 20)
    for values in (lab, lab_samples):
        np.testing.assert_allclose(lab_to_rgb(values).permute(1, 2, 0).numpy(),
                                   color.lab2rgb(values.permute(1, 2, 0).numpy()), atol=1e-9)
    # batched: any leading dimensions
    batch = rgb.view(1, 3, 20, 20).expand(2, 3, 20, 20)
    torch.testing.assert_close(rgb_to_lab(batch)[1], lab)
    # the gray image of L has that lightness and no colour
    gray = lightness_to_rgb(lab[:1])
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[0], gray[2])
    torch.testing.assert_close(rgb_to_lab(gray)[0], lab[0])


def lab_to_linear_rgb_numpy(lab: np.ndarray) -> np.ndarray:
    """CIE Lab -> XYZ (D65) -> linear sRGB with scikit-image's constants, unclipped (its `lab2xyz` clips Z)."""
    color = pytest.importorskip("skimage.color")
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 0.2068966, f**3, (f - 16 / 116) / 7.787) * np.array([0.95047, 1.0, 1.08883])
    return xyz @ color.colorconv.rgb_from_xyz.T


def test_ab_bins_are_the_cells_the_srgb_gamut_reaches():
    color = pytest.importorskip("skimage.color")
    assert CENTRES.shape == (262, 2)  # the paper's file has 313: see nn.color.ab_bins
    bins = {tuple(c) for c in CENTRES.long().tolist()}
    assert len(bins) == 262 and all(a % 10 == 0 and b % 10 == 0 for a, b in bins)
    # scikit-image's rgb2lab of the RGB cube's faces reaches exactly these cells (nearest centre, grid 10)
    levels = np.linspace(0, 1, 257)
    u, v = (t.ravel() for t in np.meshgrid(levels, levels, indexing="ij"))
    faces = [np.insert(np.stack([u, v], axis=-1), axis, value, axis=1) for axis in range(3) for value in (0.0, 1.0)]
    lab = color.rgb2lab(np.concatenate(faces)[:, None, :])[:, 0]
    assert {tuple(c) for c in (np.floor(lab[:, 1:] / 10 + 0.5).astype(int) * 10).tolist()} == bins
    # an independent search on the Lab side (L in 0..100 in steps of 2, ab in steps of 1): the nearest bin of every
    # in-gamut colour is a class, so searching the faces missed nothing
    ab = np.arange(-128.0, 128.0, 1.0)
    a, b = np.meshgrid(ab, ab, indexing="ij")
    reached = set()
    for lightness in range(0, 101, 2):
        linear = lab_to_linear_rgb_numpy(np.stack([np.full_like(a, lightness), a, b], axis=-1))
        inside = np.all((linear >= 0) & (linear <= 1), axis=-1)
        cells = np.floor(np.stack([a[inside], b[inside]], -1) / 10 + 0.5).astype(int) * 10
        reached |= set(map(tuple, cells.tolist()))
    assert reached <= bins and len(reached) >= 250  # the rest hold slivers of the gamut finer than this search
    # every pixel of an 8-bit image has its nearest bin among the classes
    rgb = torch.randint(0, 256, (3, 100, 100), generator=torch.Generator().manual_seed(0)).double() / 255
    nearest = torch.floor(rgb_to_lab(rgb)[1:].reshape(2, -1) / 10 + 0.5).long() * 10
    assert {tuple(c) for c in nearest.T.tolist()} <= bins
    assert (-90, 50) not in bins and (-90, 80) in bins  # in the paper's set / reached by sRGB green only


def test_soft_encoding_against_a_loop():
    generator = torch.Generator().manual_seed(0)
    ab = torch.rand(6, 2, generator=generator, dtype=torch.float64) * 120 - 60
    indices, weights = soft_encode(ab, CENTRES, num_neighbors=5, sigma=5.0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(6, dtype=torch.float64))
    for n in range(6):
        distances = sorted((math.dist(ab[n].tolist(), c), q) for q, c in enumerate(CENTRES.tolist()))[:5]
        kernel = [math.exp(-d**2 / (2 * 5.0**2)) for d, _ in distances]
        assert indices[n].tolist() == [q for _, q in distances]
        assert weights[n].tolist() == pytest.approx([k / sum(kernel) for k in kernel], rel=1e-9)
    # a colour exactly at a bin centre: that bin first, with most of the mass (its 4 neighbours are 10 away)
    q = 100
    indices, weights = soft_encode(CENTRES[q:q + 1], CENTRES)
    assert indices[0, 0] == q and weights[0, 0] > 0.5
    assert weights[0, 0].item() == pytest.approx(1 / (1 + 4 * math.exp(-2)), rel=1e-9)


def reference_weights(counts: list[float], centres: list[list[float]], mixing: float, sigma: float) -> list[float]:
    """Eq. 4 written out: p = counts / total, p~ = G_sigma * p renormalised, w = 1 / ((1 - l) p~ + l / Q),
    w / sum_q p~_q w_q."""
    total = sum(counts)
    p = [c / total for c in counts]
    smoothed = [sum(math.exp(-math.dist(cq, cr) ** 2 / (2 * sigma**2)) * pr for cr, pr in zip(centres, p))
                for cq in centres]
    norm = sum(smoothed)
    smoothed = [s / norm for s in smoothed]
    raw = [1 / ((1 - mixing) * s + mixing / len(counts)) for s in smoothed]
    expectation = sum(s * w for s, w in zip(smoothed, raw))
    return [w / expectation for w in raw]


@pytest.mark.parametrize("mixing", [0.5, 0.0, 1.0])
def test_rebalancing_weights_against_the_formula(mixing):
    generator = torch.Generator().manual_seed(0)
    counts = torch.randint(0, 1000, (262,), generator=generator) * (torch.rand(262, generator=generator) < 0.3)
    prior = smoothed_prior(counts, CENTRES, sigma=5.0)
    weights = rebalancing_weights(prior, mixing)
    expected = reference_weights(counts.tolist(), CENTRES.tolist(), mixing, 5.0)
    assert weights.tolist() == pytest.approx(expected, rel=1e-9)
    assert (prior * weights).sum().item() == pytest.approx(1.0, rel=1e-12)
    if mixing == 1.0:
        torch.testing.assert_close(weights, torch.ones_like(weights))


def reference_loss(logits: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor, pixel_weights) -> float:
    """Eq. 2 written out, averaged over pixels: -v(Z) sum_q Z_q log softmax(logits)_q."""
    logits = logits.double()
    batch, _, height, width = logits.shape
    total = 0.0
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                scores = logits[b, :, i, j].tolist()
                log_norm = math.log(sum(math.exp(s) for s in scores))
                z = {q: w for q, w in zip(indices[b, i, j].tolist(), weights[b, i, j].tolist())}
                total -= pixel_weights[b][i][j] * sum(w * (scores[q] - log_norm) for q, w in z.items())
    return total / (batch * height * width)


def test_loss_against_a_loop():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 262, 3, 3, generator=generator)
    ab = torch.rand(2, 3, 3, 2, generator=generator) * 100 - 50
    indices, weights = soft_encode(ab, CENTRES)
    pixel_weights = torch.rand(2, 3, 3, generator=generator) * 3
    loss = colorization_loss(logits, indices, weights, pixel_weights)
    assert loss.item() == pytest.approx(reference_loss(logits, indices, weights, pixel_weights.tolist()), rel=1e-5)


def test_forward_is_the_papers_loss_with_the_prior_of_past_steps_and_this_batch():
    """End to end against loops: Lab of the input, ab subsampled to 1/4, 5-nearest soft targets, weights from the
    counts of past steps plus this batch's nearest bins, the weight of each pixel's nearest bin."""
    model = tiny_model().train()
    config = model.config
    generator = torch.Generator().manual_seed(1)
    rgb = torch.rand(2, 3, 16, 16, generator=generator)
    past = torch.randint(0, 50, (262,), generator=generator)
    model.color_counts.copy_(past)
    output = model(normalized(rgb, config))
    ab = rgb_to_lab(rgb.double())[:, 1:, ::4, ::4].permute(0, 2, 3, 1)  # (2, 4, 4, 2)
    indices, weights = soft_encode(ab, CENTRES)
    counts = past.tolist()
    for q in indices[..., 0].flatten().tolist():
        counts[q] += 1
    w = reference_weights(counts, CENTRES.tolist(), 0.5, 5.0)
    pixel_weights = [[[w[q] for q in row] for row in image] for image in indices[..., 0].tolist()]
    expected = reference_loss(output.logits.detach(), indices, weights, pixel_weights)
    assert output.logits.shape == (2, 262, 4, 4)
    assert output.loss.item() == pytest.approx(expected, rel=1e-4)
    # the batch's counts are staged and added once per optimizer step; evaluation counts nothing
    assert torch.equal(model.color_counts, past)
    model.optimizer_step_done(1, 0.5)
    assert model.color_counts.tolist() == counts
    model.eval()(normalized(rgb, config))
    model.optimizer_step_done(2, 1.0)
    assert model.color_counts.tolist() == counts


def test_annealed_mean():
    one_hot = torch.zeros(1, 262, 2, 2)
    one_hot[0, 7] = 1.0
    expected = CENTRES[7].float().view(1, 2, 1, 1).expand(1, 2, 2, 2)
    torch.testing.assert_close(annealed_mean(one_hot.log(), CENTRES), expected)
    probs = torch.softmax(torch.randn(3, 262, generator=torch.Generator().manual_seed(0)), dim=1).double()
    # T = 1: the mean; T -> 0: the mode
    torch.testing.assert_close(annealed_mean(probs.log(), CENTRES, temperature=1.0), probs @ CENTRES)
    torch.testing.assert_close(annealed_mean(probs.log(), CENTRES, temperature=1e-3), CENTRES[probs.argmax(dim=1)])


def test_feature_map_is_the_patch_grid_or_the_last_map():
    vit = tiny_model("vit-test").backbone
    x = torch.randn(2, 3, 16, 16)
    tokens = vit(pixel_values=x).last_hidden_state[:, 1:]  # 16 patches, row-major
    grid = feature_map(vit, x)
    assert grid.shape == (2, 32, 4, 4)
    torch.testing.assert_close(grid[:, :, 1, 2], tokens[:, 1 * 4 + 2])
    assert feature_map(tiny_model().backbone, x).shape == (2, 16, 2, 2)


def test_preview_colorizes_the_lightness_with_the_annealed_mean():
    model = tiny_model("vit-test").eval()
    target = 100  # make the head predict one bin everywhere, whatever the features
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(-30.0)
        model.head.bias[target] = 30.0
    a, b = CENTRES[target].tolist()
    lightness = torch.full((1, 1, 16, 16), 60.0)
    lab = torch.cat([lightness, torch.full_like(lightness, 10.0), torch.full_like(lightness, -10.0)], dim=1)
    pixel_values = normalized(lab_to_rgb(lab), model.config)
    preview = model.preview(pixel_values)
    assert preview.row_labels == ("original", "lightness (input)", "colorized")
    mean = torch.tensor(model.config.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.image_std).view(1, 3, 1, 1)
    gray = preview.model_input * std + mean
    torch.testing.assert_close(gray[:, 0], gray[:, 2])  # what the backbone saw: no colour, the input's lightness
    torch.testing.assert_close(rgb_to_lab(gray)[:, 0], lightness[:, 0], atol=1e-3, rtol=0)
    colorized = rgb_to_lab(preview.reconstruction * std + mean)
    torch.testing.assert_close(colorized[:, 0], lightness[:, 0], atol=1e-3, rtol=0)
    linear = lab_to_linear_rgb(torch.tensor([60.0, a, b]).view(3, 1, 1))
    assert ((linear >= 0) & (linear <= 1)).all()  # the bin's colour exists at L = 60: no clipping
    torch.testing.assert_close(colorized[:, 1:].mean(dim=(2, 3)), torch.tensor([[a, b]]), atol=0.05, rtol=0)


def test_grayscale_data_is_refused_with_one_clear_error():
    gray = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8).expand(4, 3, 8, 8)
    colour = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert is_grayscale(gray).all() and not is_grayscale(colour).any()
    examples = lambda images: [{"pixel_values": image} for image in images]  # noqa: E731
    collator = ColorImageCollator([0.5] * 3, [0.5] * 3, require_color=True, method="colorization")
    with pytest.raises(HfSslError, match="grayscale"):
        collator(examples(gray))
    mixed = torch.cat([gray[:3], colour[:1]])
    assert collator(examples(mixed))["pixel_values"].shape == (4, 3, 8, 8)  # one colour image is enough
    assert collator(examples(gray))["pixel_values"].shape == (4, 3, 8, 8)  # only the first batch is checked
    lenient = ColorImageCollator([0.5] * 3, [0.5] * 3, require_color=False)
    assert lenient(examples(gray))["pixel_values"].shape == (4, 3, 8, 8)


def test_cli_refuses_grayscale_data_before_writing_anything(tmp_path):
    """The first batch goes through the collator before Trainer touches OUT: one error line, exit 2, no OUT."""
    out = tmp_path / "out"
    result = run_cli("pretrain", "--method", "colorization", "--preset", "tiny", "--require_color", "True",
                     "--max_steps", "1", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hf-ssl: error: colorization learns to predict colour") and "Traceback" not in result.stderr
    assert not out.exists()
