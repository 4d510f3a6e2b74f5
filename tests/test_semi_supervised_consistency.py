"""Mean Teacher and FixMatch: their losses against float64 loops of the papers' formulas, the EMA updates (Mean
Teacher's 0.99 -> 0.999 switch), FixMatch's weak/strong pairing and its strong augmentation in training mode only,
and that what OUT publishes is the EMA copy. Tiny ResNets at 16 px: each test runs in about a second."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_backbone_config
from hf_ssl.modeling.fixmatch import METHOD as FIXMATCH, FixMatchConfig, FixMatchModel
from hf_ssl.modeling.mean_teacher import MeanTeacherConfig, MeanTeacherModel, mean_teacher_collator

NUM_CLASSES = 3
ID2LABEL = {i: f"class{i}" for i in range(NUM_CLASSES)}


def loop_softmax(logits: torch.Tensor) -> list[float]:
    values = [float(v) for v in logits.double()]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def loop_cross_entropy(logits: torch.Tensor, target: int) -> float:
    return -math.log(loop_softmax(logits)[target])


def normalised_images(count: int, seed: int) -> torch.Tensor:
    """(count, 3, 16, 16) images as the collator gives them (uint8 -> [0, 1] -> ImageNet-normalised)."""
    from hf_ssl.nn.normalization import PixelNormalization

    pixels = torch.randint(0, 256, (count, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return PixelNormalization(MeanTeacherConfig().image_mean, MeanTeacherConfig().image_std)(pixels)


def perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Move every weight and floating-point buffer (BatchNorm statistics) of `module` a little, at random."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]:
            tensor.add_(torch.randn(tensor.shape, generator=generator).abs() * scale)


# --- Mean Teacher -------------------------------------------------------------------------------------------------

def mean_teacher(**config) -> MeanTeacherModel:
    torch.manual_seed(0)
    return MeanTeacherModel(MeanTeacherConfig(backbone_config=tiny_backbone_config(), id2label=ID2LABEL,
                                              unlabeled_ratio=2, **config))


@pytest.mark.parametrize("on_labeled", [True, False])
def test_mean_teacher_loss_is_the_ramped_softmax_mse_to_the_teacher_on_the_other_view(on_labeled):
    model = mean_teacher(consistency_ramp_up=0.4, consistency_on_labeled=on_labeled)
    perturb(model.teacher, seed=1)  # a teacher that disagrees with the student
    model.eval()  # BatchNorm from running statistics: each image's logits do not depend on its batch
    model.progress.fill_(0.1)  # a quarter of the ramp-up
    labeled, labeled_2 = normalised_images(3, 0), normalised_images(3, 1)
    unlabeled = torch.stack([normalised_images(6, 2), normalised_images(6, 3)])  # (2 views, B * mu, ...)
    labels, index = torch.tensor([0, 2, 1]), torch.arange(10, 16)
    output = model(labeled, labels, unlabeled, index, teacher_labeled_pixels=labeled_2)

    with torch.no_grad():
        student = model.classifier(pixel_values=torch.cat([labeled, unlabeled[0]])).logits
        teacher = model.teacher(pixel_values=torch.cat([labeled_2, unlabeled[1]])).logits
    supervised = sum(loop_cross_entropy(student[i], int(labels[i])) for i in range(3)) / 3
    rows = range(9) if on_labeled else range(3, 9)
    consistency = sum(sum((p - q) ** 2 for p, q in zip(loop_softmax(student[i]), loop_softmax(teacher[i]))) / NUM_CLASSES
                      for i in rows) / len(rows)
    weight = 100.0 * math.exp(-5 * (1 - 0.1 / 0.4) ** 2)  # w_max exp(-5 (1 - t / T)^2)
    assert consistency > 1e-4  # the test means something
    assert output.loss.item() == pytest.approx(supervised + weight * consistency, rel=1e-5)
    assert model.last_loss_terms["consistency_weight"].item() == pytest.approx(weight)
    # the monitor's pseudo-labels: the teacher's argmax on the unlabelled view 2, every image used
    assert torch.equal(model.last_pseudo_labels.labels, teacher[3:].argmax(-1))
    assert torch.equal(model.last_pseudo_labels.unlabeled_index, index)
    assert bool((model.last_pseudo_labels.weights == 1).all())

    model.progress.fill_(0.7)  # after the ramp-up: the full weight
    assert model.consistency_weight() == 100.0


def test_mean_teacher_gradient_flows_into_the_student_only_and_the_collator_makes_two_views():
    model = mean_teacher().train()
    examples = [{"labeled_pixels": torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8), "labels": torch.tensor(i % 3),
                 "unlabeled_pixels": torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8),
                 "unlabeled_index": torch.arange(2) + 2 * i} for i in range(4)]
    torch.manual_seed(0)
    batch = mean_teacher_collator(model.config)(examples)
    assert batch["unlabeled_pixels"].shape == (2, 8, 3, 16, 16) and batch["teacher_labeled_pixels"].shape == (4, 3, 16, 16)
    assert not torch.equal(batch["unlabeled_pixels"][0], batch["unlabeled_pixels"][1])  # independent weak draws
    model(**batch).loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.classifier.parameters())


def test_mean_teacher_ema_update_switches_from_0_99_to_0_999_after_the_ramp_up():
    model = mean_teacher(consistency_ramp_up=0.3)
    perturb(model.classifier, seed=2)
    # the decay: 0.99 while the consistency ramps up, 0.999 after; the reference's 1 - 1 / (step + 1) early on
    assert model.teacher_decay(1000, 0.1) == 0.99 and model.teacher_decay(1000, 0.3) == 0.999
    assert model.teacher_decay(1, 0.0) == 0.5 and model.teacher_decay(9, 0.0) == pytest.approx(0.9)

    for progress_of_step, decay in ((0.2, 0.99), (0.6, 0.999)):
        model.num_optimizer_steps.fill_(999)
        model.progress.fill_(progress_of_step)  # the position of the step just taken
        teacher = {n: p.clone() for n, p in model.teacher.named_parameters()}
        student = {n: p.clone() for n, p in model.classifier.named_parameters()}
        statistics = {n: b.clone() for n, b in model.teacher.named_buffers()}
        perturb(model.classifier, seed=3)  # an "optimizer step"
        student = {n: p.clone() for n, p in model.classifier.named_parameters()}
        model.optimizer_step_done(1000, progress_of_step + 0.001)
        for name, param in model.teacher.named_parameters():
            expected = decay * teacher[name].double() + (1 - decay) * student[name].double()
            torch.testing.assert_close(param.double(), expected, rtol=0, atol=1e-6)
        # the teacher's BatchNorm statistics are its own (gathered on its views), not the student's
        assert all(torch.equal(b, statistics[n]) for n, b in model.teacher.named_buffers())
    assert model.exported_model() is model.teacher


# --- FixMatch -----------------------------------------------------------------------------------------------------

def fixmatch(**config) -> FixMatchModel:
    torch.manual_seed(0)
    return FixMatchModel(FixMatchConfig(backbone_config=tiny_backbone_config(), id2label=ID2LABEL, unlabeled_ratio=3,
                                        **config))


class IdentityClassifier:
    """A stand-in for `model.logits` whose output for an image depends on which image it is: each known image (by its
    exact pixels) has its own logits; an unknown image is an error. It records the batches it was called on."""

    def __init__(self):
        self.images: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self.calls: list[torch.Tensor] = []

    def add(self, images: torch.Tensor, logits: torch.Tensor) -> None:
        self.images.extend(images)
        self.outputs.extend(logits)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        self.calls.append(pixel_values.detach().clone())
        rows = []
        for image in pixel_values:
            found = [i for i, known in enumerate(self.images) if torch.equal(known, image)]
            assert len(found) == 1, "an image the classifier does not know"
            rows.append(self.outputs[found[0]])
        # a graph to the logits, so that the loss can be backpropagated like a real model's
        return torch.stack(rows).requires_grad_(True)


def fixmatch_batch(seed: int = 0):
    labeled, weak = normalised_images(4, seed), normalised_images(12, seed + 1)
    return labeled, torch.tensor([0, 1, 2, 0]), weak, torch.arange(100, 112)


def replay_strong_views(model: FixMatchModel, weak: torch.Tensor, seed: int) -> torch.Tensor:
    """The strong views a seeded forward makes (RandAugment draws from torch's default generator)."""
    torch.manual_seed(seed)
    return model.strong_view(weak)


def test_fixmatch_loss_is_the_masked_strong_view_cross_entropy_over_all_unlabelled_images():
    model = fixmatch(unlabeled_weight=2.0).train()
    labeled, labels, weak, index = fixmatch_batch()
    strong = replay_strong_views(model, weak, seed=5)
    generator = torch.Generator().manual_seed(4)
    classifier = IdentityClassifier()
    labeled_logits = torch.randn(4, NUM_CLASSES, generator=generator)
    weak_logits = torch.randn(12, NUM_CLASSES, generator=generator) * 4
    weak_logits[:4] = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 8.0], [0.0, 7.0, 0.0], [0.0, 2.0, 1.0]])
    strong_logits = torch.randn(12, NUM_CLASSES, generator=generator) * 2
    classifier.add(labeled, labeled_logits)
    classifier.add(weak, weak_logits)
    classifier.add(strong, strong_logits)
    model.logits = classifier

    torch.manual_seed(5)
    output = model(labeled, labels, weak, index)

    supervised = sum(loop_cross_entropy(labeled_logits[i], int(labels[i])) for i in range(4)) / 4
    unlabeled, used = 0.0, []
    for b in range(12):  # FixMatch Eq. 4: 1 / (mu B) sum_b 1(max q_b >= tau) H(argmax q_b, p(y | A(u_b)))
        q = loop_softmax(weak_logits[b])
        if max(q) >= 0.95:
            used.append(b)
            unlabeled += loop_cross_entropy(strong_logits[b], q.index(max(q)))
    unlabeled /= 12  # every unlabelled image, used or not
    assert 0 < len(used) < 12, used  # the mask keeps some and drops some
    assert output.loss.item() == pytest.approx(supervised + 2.0 * unlabeled, rel=1e-5)
    assert model.last_loss_terms["mask_rate"].item() == pytest.approx(len(used) / 12)
    assert model.last_pseudo_labels.weights.nonzero().flatten().tolist() == used
    assert torch.equal(model.last_pseudo_labels.labels, weak_logits.argmax(-1))
    assert torch.equal(model.last_pseudo_labels.unlabeled_index, index)
    # labelled, weak and strong views in one classifier call (BatchNorm over all of them)
    assert len(classifier.calls) == 1 and classifier.calls[0].shape[0] == 4 + 12 + 12


def test_fixmatch_strong_view_i_is_trained_on_the_pseudo_label_of_weak_view_i():
    """A classifier whose prediction is the identity of the image: weak view i says "class of image i" with
    confidence; the strong view of image i (recognised by replaying the seeded augmentation) predicts that class
    too. Paired correctly, every strong view agrees with its target (loss ~ 0); any shift or mix-up of rows would
    give a large loss."""
    model = fixmatch().train()
    labeled, labels, weak, index = fixmatch_batch(seed=10)
    strong = replay_strong_views(model, weak, seed=11)
    assert not any(torch.equal(s, w) for s, w in zip(strong, weak))  # the strong views are new images
    identity = torch.tensor([0, 1, 2, 2, 1, 0, 1, 0, 2, 0, 0, 1])  # the class each unlabelled image "is"
    one_hot = torch.nn.functional.one_hot(identity, NUM_CLASSES).float() * 30
    classifier = IdentityClassifier()
    classifier.add(labeled, torch.nn.functional.one_hot(labels, NUM_CLASSES).float() * 30)
    classifier.add(weak, one_hot)
    classifier.add(strong, one_hot)  # the strong view of image i looks like image i to this classifier
    model.logits = classifier

    torch.manual_seed(11)
    output = model(labeled, labels, weak, index)
    assert torch.equal(model.last_pseudo_labels.labels, identity)
    assert bool((model.last_pseudo_labels.weights == 1).all())
    assert model.last_loss_terms["unlabeled_loss"].item() < 1e-6
    assert output.loss.item() < 1e-6
    # the same images with the strong views in another order give a large unlabelled loss: the pairing matters
    classifier.outputs[16:] = list(one_hot.roll(1, dims=0))
    torch.manual_seed(11)
    model(labeled, labels, weak, index)
    assert model.last_loss_terms["unlabeled_loss"].item() > 10


def test_fixmatch_strong_augmentation_runs_in_training_mode_only():
    model = fixmatch()
    labeled, labels, weak, index = fixmatch_batch(seed=20)
    seen = []
    real_logits = model.logits
    model.logits = lambda pixels: (seen.append(pixels.detach().clone()), real_logits(pixels))[1]

    model.eval()
    model(labeled, labels, weak, index)
    assert torch.equal(seen[-1][16:], weak)  # eval: the "strong" view is the weak view, untouched

    model.train()
    torch.manual_seed(21)
    output = model(labeled, labels, weak, index)
    strong = seen[-1][16:]
    assert torch.equal(seen[-1][4:16], weak) and not torch.equal(strong, weak)
    assert torch.equal(strong, replay_strong_views(model, weak, seed=21))  # RandAugment + Cutout of the weak view
    assert strong.shape == weak.shape and strong.dtype == weak.dtype and math.isfinite(output.loss.item())
    # the strong view is normalised like the weak one: back in [0, 1] pixel units once de-normalised
    pixels = model.normalization.invert(strong)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_fixmatch_ema_is_updated_after_each_optimizer_step_and_is_what_out_publishes(tmp_path):
    from transformers import AutoModelForImageClassification

    from hf_ssl.hub.export import export_pretrained, image_processor_for

    model = fixmatch()
    assert model.exported_model() is model.ema and model.ema is not model.classifier
    assert not any(p.requires_grad for p in model.ema.parameters())
    ema = {n: p.clone() for n, p in model.ema.named_parameters()}
    perturb(model.classifier, seed=30)  # an "optimizer step"
    trained = {n: p.clone() for n, p in model.classifier.named_parameters()}
    assert model.ema_decay(1) == 0.5 and model.ema_decay(9) == pytest.approx(0.9)  # the warm start: a plain average
    assert model.ema_decay(999) == pytest.approx(0.999) and model.ema_decay(5000) == 0.999
    model.num_optimizer_steps.fill_(4999)
    model.optimizer_step_done(5000, 0.5)
    for name, param in model.ema.named_parameters():
        expected = 0.999 * ema[name].double() + 0.001 * trained[name].double()
        torch.testing.assert_close(param.double(), expected, rtol=0, atol=1e-6)
    assert all(torch.equal(b, dict(model.classifier.named_buffers())[n]) for n, b in model.ema.named_buffers())

    processor = image_processor_for(16, model.config.image_mean, model.config.image_std)
    export_pretrained(model, FIXMATCH, tmp_path, {}, processor)
    published = AutoModelForImageClassification.from_pretrained(tmp_path)
    state = published.state_dict()
    assert all(torch.equal(state[n], p) for n, p in model.ema.state_dict().items())
    assert not all(torch.equal(state[n], p) for n, p in model.classifier.state_dict().items())
    assert published.config.id2label == ID2LABEL
