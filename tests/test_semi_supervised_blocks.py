"""The semi-supervised building blocks against straightforward loops of their formulas: Mean Teacher's consistency and
the soft cross-entropy (float64), the pseudo-label selection rules (top-k against sorting by hand), FixMatch's
RandAugment (each op on a known image, the batched grouping against a per-image loop), and data distillation's
test-time ensemble."""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_ssl.losses.consistency import soft_cross_entropy, softmax_mse_loss
from hf_ssl.nn import rand_augment as ra
from hf_ssl.nn.pseudo_labeling import (
    TopKPerClassSelector, select_all, select_pseudo_labels, select_threshold, select_weighted, soft_targets,
)
from hf_ssl.nn.test_time_ensemble import DEFAULT_TRANSFORMS, apply_transform, ensemble_probabilities


def softmax_row(row: list[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


# ---------------------------------------------------------------- losses/consistency.py

@pytest.mark.parametrize("class_reduction", ["mean", "sum"])
def test_softmax_mse_matches_a_loop(class_reduction):
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 5, dtype=torch.float64) * 3, torch.randn(6, 5, dtype=torch.float64) * 3
    total = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        squared = sum((p - q) ** 2 for p, q in zip(softmax_row(s_row), softmax_row(t_row)))
        total += squared / 5 if class_reduction == "mean" else squared
    expected = total / 6
    assert softmax_mse_loss(student, teacher, class_reduction).item() == pytest.approx(expected, rel=1e-12)


def test_softmax_mse_is_the_reference_reduction_and_stops_teacher_gradients():
    torch.manual_seed(1)
    student = torch.randn(4, 10, requires_grad=True)
    teacher = torch.randn(4, 10, requires_grad=True)
    loss = softmax_mse_loss(student, teacher)
    # CuriousAI/mean-teacher: F.mse_loss(sum) / num_classes, then / minibatch_size in main.py
    reference = F.mse_loss(student.softmax(-1), teacher.softmax(-1), reduction="sum") / 10 / 4
    torch.testing.assert_close(loss, reference)
    loss.backward()
    assert student.grad is not None and teacher.grad is None
    empty = softmax_mse_loss(torch.zeros(0, 3), torch.zeros(0, 3))
    assert empty.item() == 0.0
    with pytest.raises(ValueError):
        softmax_mse_loss(torch.zeros(2, 3), torch.zeros(2, 4))


def test_soft_cross_entropy_matches_a_loop():
    torch.manual_seed(2)
    logits = torch.randn(5, 4, dtype=torch.float64) * 2
    targets = torch.randn(5, 4, dtype=torch.float64).softmax(-1)
    weights = torch.tensor([1.0, 0.0, 0.5, 0.9, 1.0], dtype=torch.float64)
    plain, weighted = 0.0, 0.0
    for i, (row, q_row) in enumerate(zip(logits.tolist(), targets.tolist())):
        ce = -sum(q * math.log(p) for q, p in zip(q_row, softmax_row(row)))
        plain += ce
        weighted += weights[i].item() * ce
    assert soft_cross_entropy(logits, targets).item() == pytest.approx(plain / 5, rel=1e-12)
    # normalised by all N examples (USB's masked-loss normalisation), not by the sum of the weights
    assert soft_cross_entropy(logits, targets, weights).item() == pytest.approx(weighted / 5, rel=1e-12)
    # one-hot targets: the ordinary cross-entropy
    labels = torch.tensor([0, 3, 1, 2, 2])
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(labels, 4).double()),
                               F.cross_entropy(logits, labels))
    student = logits.clone().requires_grad_()
    teacher = targets.clone().requires_grad_()
    soft_cross_entropy(student, teacher).backward()
    assert teacher.grad is None
    assert soft_cross_entropy(torch.zeros(0, 4), torch.zeros(0, 4)).item() == 0.0


# ---------------------------------------------------------------- nn/pseudo_labeling.py

PROBS = torch.tensor([[0.96, 0.02, 0.02], [0.5, 0.3, 0.2], [0.1, 0.85, 0.05], [0.05, 0.0, 0.95]],
                     dtype=torch.float64)


def test_threshold_all_weighted_by_hand():
    labels = [0, 0, 1, 2]
    selection = select_threshold(PROBS, 0.95)
    assert selection.labels.tolist() == labels and selection.weights.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert select_threshold(PROBS, 0.0).weights.tolist() == [1.0] * 4  # Lee 2013: every argmax
    selection = select_all(PROBS)
    assert selection.labels.tolist() == labels and selection.weights.tolist() == [1.0] * 4
    selection = select_weighted(PROBS)
    assert selection.labels.tolist() == labels and selection.weights.tolist() == [0.96, 0.5, 0.85, 0.95]
    assert select_pseudo_labels("threshold", PROBS, threshold=0.9).weights.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert select_pseudo_labels("weighted", PROBS).weights.tolist() == [0.96, 0.5, 0.85, 0.95]
    with pytest.raises(ValueError):
        select_pseudo_labels("top_k", PROBS)
    with pytest.raises(ValueError):
        select_pseudo_labels("nope", PROBS)


def test_soft_targets_temperature():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    torch.testing.assert_close(soft_targets(logits), logits.softmax(-1))
    torch.testing.assert_close(soft_targets(logits, 0.5), (logits * 2).softmax(-1))


def top_k_by_hand(confidence: dict[int, float], predicted: dict[int, int], k: int) -> set[int]:
    """The examples among `confidence` (index -> value) in the k most confident of their predicted class."""
    kept = set()
    for c in set(predicted.values()):
        members = sorted((i for i in confidence if predicted[i] == c), key=lambda i: -confidence[i])
        kth = confidence[members[k - 1]] if len(members) >= k else -math.inf
        kept |= {i for i in members if confidence[i] >= kth}
    return kept


def test_top_k_per_class_against_sorting_by_hand():
    torch.manual_seed(3)
    num_unlabeled, num_classes, k = 40, 3, 4
    probs = (torch.randn(num_unlabeled, num_classes) * 2).softmax(-1)
    confidence, predicted = probs.max(-1)
    all_conf = dict(enumerate(confidence.tolist()))
    all_pred = dict(enumerate(predicted.tolist()))
    exact = top_k_by_hand(all_conf, all_pred, k)
    selector = TopKPerClassSelector(num_unlabeled, num_classes, k)
    order = torch.randperm(num_unlabeled)
    seen: set[int] = set()
    for batch in order.split(8):  # five batches: exact only after the fifth
        seen |= set(batch.tolist())
        selection = selector(batch, probs[batch])
        assert selection.labels.tolist() == predicted[batch].tolist()
        kept = {i for i, w in zip(batch.tolist(), selection.weights.tolist()) if w == 1.0}
        assert set(selection.weights.tolist()) <= {0.0, 1.0}
        # the rule on what has been recorded so far ...
        recorded = top_k_by_hand({i: all_conf[i] for i in seen}, all_pred, k)
        assert kept == recorded & set(batch.tolist())
        # ... keeps a superset of the exact selection (never too few)
        assert kept >= exact & set(batch.tolist())
    # one full pass: exact, for every example (a second epoch in another order)
    for batch in torch.randperm(num_unlabeled).split(8):
        kept = {i for i, w in zip(batch.tolist(), selector(batch, probs[batch]).weights.tolist()) if w == 1.0}
        assert kept == exact & set(batch.tolist())
    counts = torch.bincount(predicted, minlength=num_classes)
    thresholds = selector.class_thresholds()
    for c in range(num_classes):
        members = sorted((all_conf[i] for i in all_conf if all_pred[i] == c), reverse=True)
        assert thresholds[c].item() == (members[k - 1] if counts[c] >= k else -math.inf)
    # reset: a new round forgets everything; the first batch is then judged on its own
    selector.reset()
    assert torch.isinf(selector.confidences).all() and (selector.predictions == -1).all()
    batch = order[:8]
    kept = {i for i, w in zip(batch.tolist(), selector(batch, probs[batch]).weights.tolist()) if w == 1.0}
    assert kept == top_k_by_hand({i: all_conf[i] for i in batch.tolist()}, all_pred, k)


def test_top_k_keeps_ties_and_small_classes():
    selector = TopKPerClassSelector(num_unlabeled=5, num_classes=3, k=1)
    probs = torch.tensor([[0.7, 0.3, 0.0], [0.7, 0.2, 0.1], [0.6, 0.4, 0.0], [0.1, 0.9, 0.0], [0.2, 0.2, 0.6]])
    selection = select_pseudo_labels("top_k", probs, top_k=selector, unlabeled_index=torch.arange(5))
    # class 0: two tied at 0.7 are both "the top 1"; classes 1 and 2 have one example each
    assert selection.weights.tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert selector.class_thresholds().tolist() == pytest.approx([0.7, 0.9, 0.6])
    assert TopKPerClassSelector(4, 3, k=2).class_thresholds().tolist() == [-math.inf] * 3
    assert set(dict(selector.named_buffers())) == {"confidences", "predictions"}


# ---------------------------------------------------------------- nn/rand_augment.py

def marked(height: int = 5, width: int = 5, row: int = 0, col: int = 2) -> torch.Tensor:
    image = torch.zeros(1, 1, height, width)
    image[0, 0, row, col] = 1.0
    return image


def where_is(image: torch.Tensor) -> tuple[int, int]:
    flat = int(image[0, 0].flatten().argmax())
    return divmod(flat, image.shape[-1])


def test_rand_augment_shape_range_determinism():
    torch.manual_seed(4)
    images = torch.rand(16, 3, 12, 12)
    before = images.clone()
    out = ra.rand_augment(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(images, before)  # the input is not modified
    again = ra.RandAugment()(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    other = ra.rand_augment(images, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)


def test_rand_augment_batched_equals_each_image_alone():
    """The grouping by op gives what applying each image's own draws to it alone gives (the draws replayed in
    rand_augment's order: op ids, unit magnitudes, then Cutout's three numbers)."""
    torch.manual_seed(5)
    images = torch.rand(24, 3, 10, 10)
    ops = tuple(ra.FIXMATCH_RANGES)
    out = ra.rand_augment(images, generator=torch.Generator().manual_seed(7))
    replay = torch.Generator().manual_seed(7)
    chosen = torch.randint(len(ops), (2, 24), generator=replay)
    unit = torch.rand((2, 24), generator=replay, dtype=torch.float64)
    cut = torch.rand((3, 24), generator=replay, dtype=torch.float64)
    for i in range(24):
        image = images[i:i + 1]
        for slot in range(2):
            op = ops[chosen[slot, i]]
            low, high = ra.FIXMATCH_RANGES[op]
            magnitude = torch.tensor([low + (high - low) * unit[slot, i].item()], dtype=torch.float64)
            image = ra.apply_op(op, image, magnitude)
        size = int(cut[0, i].item() * 0.5 * 10)
        image = ra.cutout(image, torch.tensor([int(cut[1, i] * 10)]), torch.tensor([int(cut[2, i] * 10)]),
                          torch.tensor([size]))
        torch.testing.assert_close(out[i:i + 1], image.clamp(0, 1), atol=1e-5, rtol=0)
    assert len(set(chosen.flatten().tolist())) > 8  # the batch exercised most ops


def test_rand_augment_keeps_gray_images_gray():
    torch.manual_seed(6)
    gray = torch.rand(32, 1, 10, 10)
    out = ra.rand_augment(gray, generator=torch.Generator().manual_seed(0))
    assert out.shape == gray.shape and 0 <= out.min() and out.max() <= 1
    rgb = ra.rand_augment(gray.expand(-1, 3, -1, -1), generator=torch.Generator().manual_seed(0))
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 1], rgb[:, 2])


def test_affine_ops_move_a_marked_pixel():
    one = torch.ones(1)
    cases = [
        (ra.rotate, 90.0, (0, 2), (2, 0)),  # counter-clockwise: the top goes to the left
        (ra.rotate, -90.0, (0, 2), (2, 4)),
        (ra.translate_x, 0.2, (2, 2), (2, 3)),  # 0.2 of 5 px = 1 px right
        (ra.translate_y, -0.2, (2, 2), (1, 2)),
        (ra.shear_x, 1.0, (4, 2), (4, 4)),  # x' = x + (y - 2)
        (ra.shear_x, 1.0, (2, 1), (2, 1)),  # the centre row stays
        (ra.shear_y, 1.0, (2, 4), (4, 4)),  # y' = y + (x - 2)
    ]
    for op, magnitude, source, target in cases:
        out = op(marked(row=source[0], col=source[1]), one * magnitude)
        assert where_is(out) == target, (op.__name__, magnitude)
        assert out[0, 0, target[0], target[1]].item() == pytest.approx(1.0, abs=1e-5)
        assert out.sum().item() == pytest.approx(1.0, abs=1e-5)
    # a small rotation moves mass off-grid but keeps it inside [0, 1]
    out = ra.rotate(torch.rand(2, 3, 8, 8), torch.tensor([30.0, -30.0]))
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


def test_intensity_ops_on_known_images():
    values = torch.tensor([0.2, 0.6, 0.9, 0.5]).view(1, 1, 2, 2)
    # solarize: values >= threshold are inverted; a threshold of 1 leaves everything
    expected = torch.tensor([0.2, 0.4, 0.1, 0.5]).view(1, 1, 2, 2)
    torch.testing.assert_close(ra.solarize(values, torch.tensor([0.5])), expected)
    assert torch.equal(ra.solarize(values, torch.tensor([1.0])), values)
    # identity
    assert torch.equal(ra.identity(values, torch.tensor([0.3])), values)
    # brightness (PIL): factor x image
    torch.testing.assert_close(ra.brightness(values, torch.tensor([0.5])), values * 0.5)
    # contrast (PIL): mean + f (x - mean); f = 0 gives the mean gray
    mean = values.mean()
    torch.testing.assert_close(ra.contrast(values, torch.tensor([0.5])), mean + 0.5 * (values - mean))
    torch.testing.assert_close(ra.contrast(values, torch.tensor([0.0])), mean.expand(1, 1, 2, 2))
    # color (PIL): f = 0 gives the luma on every channel, a gray image is left alone
    rgb = torch.rand(1, 3, 4, 4)
    luma = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    torch.testing.assert_close(ra.color(rgb, torch.tensor([0.0])), luma.unsqueeze(1).expand(-1, 3, -1, -1))
    torch.testing.assert_close(ra.color(rgb, torch.tensor([1.0])), rgb)
    assert torch.equal(ra.color(values, torch.tensor([0.0])), values)
    # autocontrast: each channel stretched to [0, 1]; a constant channel unchanged
    image = torch.stack([torch.tensor([[0.2, 0.4], [0.6, 0.3]]), torch.full((2, 2), 0.7)]).unsqueeze(0)
    out = ra.auto_contrast(image)
    torch.testing.assert_close(out[0, 0], (image[0, 0] - 0.2) / 0.4)
    assert torch.equal(out[0, 1], image[0, 1])


def test_posterize_keeps_the_high_bits():
    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16).expand(4, 1, 16, 16) / 255
    out = ra.posterize(levels, torch.tensor([4.0, 5.9, 7.0, 8.0]))  # fractional bits truncate, as USB's int(v)
    for image, bits in zip(out, [4, 5, 7, 8]):
        expected = [(v >> (8 - bits)) << (8 - bits) for v in range(256)]
        assert torch.round(image.flatten() * 255).long().tolist() == expected


def test_equalize_spreads_a_two_level_histogram():
    image = torch.full((1, 1, 32, 32), 0.2)
    image[..., 16:, :] = 0.4
    out = ra.equalize(image)
    # PIL's equalize: step = (1024 - 512) // 255 = 2; level 51 -> 0, level 102 -> (512 + 1) // 2 -> 255
    assert torch.equal(out[..., :16, :], torch.zeros(1, 1, 16, 32))
    assert torch.equal(out[..., 16:, :], torch.ones(1, 1, 16, 32))


def test_sharpness_blends_with_pil_smooth_kernel():
    torch.manual_seed(8)
    image = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    assert torch.allclose(ra.sharpness(image, torch.tensor([1.0])), image)
    smoothed = ra.sharpness(image, torch.tensor([0.0]))
    kernel = [[1, 1, 1], [1, 5, 1], [1, 1, 1]]
    for r in range(5):
        for c in range(5):
            if r in (0, 4) or c in (0, 4):  # PIL keeps the border pixels
                expected = image[0, 0, r, c].item()
            else:
                expected = sum(kernel[i][j] * image[0, 0, r - 1 + i, c - 1 + j].item()
                               for i in range(3) for j in range(3)) / 13
            assert smoothed[0, 0, r, c].item() == pytest.approx(expected, abs=1e-6)


def test_cutout_blanks_one_square():
    image = torch.full((2, 3, 10, 10), 0.2)
    out = ra.cutout(image, torch.tensor([5, 0]), torch.tensor([5, 9]), torch.tensor([4, 4]))
    expected = image.clone()
    expected[0, :, 3:7, 3:7] = 0.5  # rows and columns [5 - 2, 5 - 2 + 4)
    expected[1, :, 0:2, 7:10] = 0.5  # clipped at the top and right borders
    assert torch.equal(out, expected)
    assert torch.equal(ra.cutout(image, torch.tensor([5, 5]), torch.tensor([5, 5]), torch.tensor([0, 0])), image)


def test_rand_augment_cutout_is_one_gray_rectangle_of_at_most_half_the_side():
    images = torch.full((32, 1, 16, 16), 0.2)
    out = ra.rand_augment(images, ops=("identity",), generator=torch.Generator().manual_seed(9))
    sides = []
    for image in out[:, 0]:
        changed = image != 0.2
        assert torch.all(image[changed] == 0.5)
        if not changed.any():
            continue
        rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
        height, width = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert changed.sum() == height * width  # one filled rectangle
        assert height <= 8 and width <= 8
        touches_border = rows[0] == 0 or cols[0] == 0 or rows[-1] == 15 or cols[-1] == 15
        if not touches_border:
            assert height == width  # a square unless clipped
        sides.append(max(height, width))
    assert len(set(sides)) > 3  # the side is drawn per image
    assert torch.equal(ra.rand_augment(images, ops=("identity",), cutout_max=0.0), images)


def test_rand_augment_rejects_unknown_ops():
    with pytest.raises(ValueError):
        ra.rand_augment(torch.rand(2, 3, 8, 8), ops=("blur",))
    with pytest.raises(ValueError):
        ra.apply_op("blur", torch.rand(2, 3, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError):
        ra.RandAugment(ops=())


# ---------------------------------------------------------------- nn/test_time_ensemble.py

def test_transforms_on_known_images():
    image = torch.zeros(1, 1, 10, 10)
    image[0, 0, 3, 1] = 1.0
    assert where_is(apply_transform("hflip", image)) == (3, 8)
    assert torch.equal(apply_transform("identity", image), image)
    quadrant = torch.zeros(1, 2, 10, 10)
    quadrant[..., :5, :5] = 1.0
    torch.testing.assert_close(apply_transform("crop_0.5_tl", quadrant), torch.ones(1, 2, 10, 10))
    torch.testing.assert_close(apply_transform("crop_0.5_br", quadrant), torch.zeros(1, 2, 10, 10))
    # composed left to right: the flip first puts the bright quadrant on the top right
    torch.testing.assert_close(apply_transform("hflip+crop_0.5_tr", quadrant), torch.ones(1, 2, 10, 10))
    # scale 2: the centre half, upsampled (pixels 1..6 bright, so the crop's edge pixels interpolate bright ones);
    # a constant image stays constant at every scale
    centre = torch.zeros(1, 1, 8, 8)
    centre[..., 1:7, 1:7] = 1.0
    torch.testing.assert_close(apply_transform("scale_2", centre), torch.ones(1, 1, 8, 8))
    flat = torch.full((2, 3, 9, 9), 0.3)
    for name in DEFAULT_TRANSFORMS + ("crop_0.875_c", "scale_0.5"):
        out = apply_transform(name, flat)
        assert out.shape == flat.shape
        torch.testing.assert_close(out, flat)
    with pytest.raises(ValueError):
        apply_transform("rotate_90", flat)
    with pytest.raises(ValueError):
        apply_transform("crop_0.5_middle", flat)


def test_ensemble_is_the_mean_of_softmaxes_over_transforms():
    torch.manual_seed(10)
    images = torch.rand(3, 2, 8, 8, dtype=torch.float64)
    weight = torch.randn(2 * 8 * 8, 4, dtype=torch.float64)

    def predict(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ weight

    transforms = DEFAULT_TRANSFORMS + ("crop_0.75_bl",)
    probs = ensemble_probabilities(predict, images, transforms)
    assert probs.shape == (3, 4) and probs.dtype == torch.float64
    for i in range(3):
        rows = [softmax_row(predict(apply_transform(t, images))[i].tolist()) for t in transforms]
        expected = [sum(r[c] for r in rows) / len(transforms) for c in range(4)]
        assert probs[i].tolist() == pytest.approx(expected, rel=1e-12)
    assert set(DEFAULT_TRANSFORMS) == {"identity", "hflip", "scale_0.8", "scale_1.2", "hflip+scale_0.8",
                                       "hflip+scale_1.2"}
    # with the identity alone it is the model's softmax
    torch.testing.assert_close(ensemble_probabilities(predict, images, ("identity",)), predict(images).softmax(-1))
