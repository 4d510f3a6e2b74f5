"""The teacher-student rounds methods (`self_training`, `data_distillation`, `noisy_student`): the phase schedule and
what happens at a boundary, each method's loss against a float64 loop of its formula, the student's noise, and
`--teacher PATH` skipping round 0."""

from __future__ import annotations

import math

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoModelForImageClassification, ConvNextConfig

from conftest import step_done, tiny_backbone_config
from hf_ssl.errors import HfSslError
from hf_ssl.modeling.data_distillation import DataDistillationConfig, DataDistillationModel
from hf_ssl.modeling.noisy_student import NoisyStudentConfig, NoisyStudentModel
from hf_ssl.modeling.self_training import SelfTrainingConfig, SelfTrainingModel
from hf_ssl.modeling.semi_supervised import build_image_classifier
from hf_ssl.nn.test_time_ensemble import apply_transform

CLASSES = ("circle", "cross", "square")
MU, SIZE = 3, 6


def with_labels(config, names=CLASSES):
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
    return config


def make(model_class, config_class, **fields):
    torch.manual_seed(0)
    return model_class(with_labels(config_class(backbone_config=tiny_backbone_config(), unlabeled_ratio=MU, **fields)))


def batch(seed: int = 0, mu: int = MU) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return dict(labeled_pixels=torch.randn(SIZE, 3, 16, 16, generator=generator),
                labels=torch.randint(0, 3, (SIZE,), generator=generator),
                unlabeled_pixels=torch.randn(SIZE * mu, 3, 16, 16, generator=generator),
                unlabeled_index=torch.randperm(SIZE * mu, generator=generator))


def loop_log_softmax(logits: torch.Tensor) -> list[float]:
    values = [float(v) for v in logits.detach().double()]
    top = max(values)
    log_normaliser = top + math.log(sum(math.exp(v - top) for v in values))
    return [v - log_normaliser for v in values]


def loop_softmax(logits: torch.Tensor) -> list[float]:
    return [math.exp(v) for v in loop_log_softmax(logits)]


def perturb_teacher(model) -> None:
    """A teacher that differs from the student (as after a round of training), with confident predictions."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.teacher.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2)


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def split_threshold(model, pixels) -> float:
    """A threshold half the teacher's confidences on `pixels` pass, none at the edge."""
    with torch.no_grad():
        probabilities = model.teacher_probabilities(model.teacher, pixels).double()
    confidences = probabilities.max(-1).values.sort().values
    middle = len(confidences) // 2
    return float(confidences[middle - 1] + confidences[middle]) / 2


def supervised_part(model, inputs) -> float:
    logits = model.logits(inputs["labeled_pixels"])
    return sum(-loop_log_softmax(logits[i])[int(y)] for i, y in enumerate(inputs["labels"])) / SIZE


# --- the schedule -------------------------------------------------------------------------------------------------

def test_rounds_split_training_into_equal_phases():
    model = make(SelfTrainingModel, SelfTrainingConfig)  # rounds 2: phases [0, 1/3), [1/3, 2/3), [2/3, 1]
    assert model.config.rounds == 2 and model.config.num_phases == 3
    expected = {0.0: 0, 0.2: 0, 1 / 3: 1, 0.5: 1, 2 / 3: 2, 0.9: 2, 1.0: 2}
    assert {p: model.round_at(p) for p in expected} == expected
    # the float32 `progress` buffer at an exact boundary is still the next round
    for step, total in ((10, 30), (20, 30), (1, 3), (2, 3), (7, 21)):
        model.progress.fill_(step / total)
        assert model.current_round == model.round_at(step / total) == int(round(3 * step / total))
    noisy = make(NoisyStudentModel, NoisyStudentConfig)
    assert noisy.config.num_phases == 4 and [noisy.round_at(p) for p in (0.24, 0.25, 0.5, 0.99)] == [0, 1, 2, 3]


def test_the_teacher_is_the_classifier_at_the_boundary_and_frozen_after():
    model = make(SelfTrainingModel, SelfTrainingConfig).train()
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())
    total = 6  # rounds 2: 2 steps per phase
    step_done(model, 1 / total)
    assert model.current_round == 0 and not states_equal(model.teacher, model.classifier)
    with torch.no_grad():
        model.classifier.classifier[-1].weight.add_(1.0)  # "training" in round 0
    step_done(model, 2 / total)  # the step that enters round 1
    assert model.current_round == 1 and states_equal(model.teacher, model.classifier)
    frozen = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    with torch.no_grad():
        model.classifier.classifier[-1].weight.add_(1.0)  # the student trains on
    step_done(model, 3 / total)
    assert all(torch.equal(frozen[k], v) for k, v in model.teacher.state_dict().items())
    assert not states_equal(model.teacher, model.classifier)  # self-training: no re-initialisation either
    step_done(model, 4 / total)  # round 2: the student becomes the teacher
    assert model.current_round == 2 and states_equal(model.teacher, model.classifier)
    model.train()
    assert model.classifier.training and not model.teacher.training  # Trainer's model.train() keeps it frozen


def test_noisy_student_reinitialises_the_student_at_the_boundary():
    model = make(NoisyStudentModel, NoisyStudentConfig).train()  # rounds 3: 4 phases
    step_done(model, 1 / 8)
    with torch.no_grad():
        model.classifier.classifier[-1].weight.add_(1.0)
    before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    parameters = list(model.classifier.parameters())
    step_done(model, 2 / 8)
    assert model.current_round == 1
    assert all(torch.equal(before[k], v) for k, v in model.teacher.state_dict().items())  # the old student teaches
    changed = [k for k, v in model.classifier.state_dict().items() if not torch.equal(before[k], v)]
    assert "classifier.1.weight" in changed and any(k.startswith("resnet.") for k in changed)
    assert list(model.classifier.parameters()) == parameters  # the same tensors: the optimizer keeps them


def test_config_checks():
    with pytest.raises(StrictDataclassClassValidationError, match="needs --top_k"):
        SelfTrainingConfig(selection="top_k")
    with pytest.raises(StrictDataclassClassValidationError, match="selection must be one of"):
        SelfTrainingConfig(selection="best")
    with pytest.raises(StrictDataclassClassValidationError, match="rounds must be at least 1"):
        NoisyStudentConfig(rounds=0)
    with pytest.raises(StrictDataclassClassValidationError, match="unknown test-time transform"):
        DataDistillationConfig(transforms=["rotate_90"])
    assert DataDistillationConfig(horizontal_flip=False).transforms == ["identity", "scale_0.8", "scale_1.2"]


# --- the losses ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("selection", ["threshold", "all", "weighted", "top_k"])
def test_self_training_loss_against_a_loop(selection):
    model = make(SelfTrainingModel, SelfTrainingConfig, selection=selection, top_k=2).eval()
    perturb_teacher(model)
    model.progress.fill_(0.5)  # round 1: the teacher is `model.teacher`
    inputs = batch()
    threshold = model.config.threshold = split_threshold(model, inputs["unlabeled_pixels"])
    output = model(**inputs)

    with torch.no_grad():
        teacher_logits = model.teacher(pixel_values=inputs["unlabeled_pixels"]).logits
        student_logits = model.logits(inputs["unlabeled_pixels"])
        supervised = supervised_part(model, inputs)
    probabilities = [loop_softmax(row) for row in teacher_logits]
    confidence = [max(p) for p in probabilities]
    label = [p.index(max(p)) for p in probabilities]
    n = len(probabilities)
    if selection == "threshold":
        weights = [1.0 if c >= threshold else 0.0 for c in confidence]
    elif selection == "all":
        weights = [1.0] * n
    elif selection == "weighted":
        weights = confidence
    else:  # the 2 most confident of each predicted class, by sorting (the buffer has seen this batch only)
        kept = set()
        for cls in set(label):
            members = sorted((i for i in range(n) if label[i] == cls), key=lambda i: -confidence[i])
            kept |= set(members[:2])
        weights = [1.0 if i in kept else 0.0 for i in range(n)]
    assert 0 < sum(w > 0 for w in weights) < n or selection in ("all", "weighted")
    unlabeled = sum(w * -loop_log_softmax(student_logits[i])[label[i]] for i, w in enumerate(weights)) / n
    assert output.loss.item() == pytest.approx(supervised + unlabeled, rel=1e-5)
    assert model.last_loss_terms["unlabeled_loss"].item() == pytest.approx(unlabeled, rel=1e-5)
    pseudo = model.last_pseudo_labels
    assert torch.equal(pseudo.unlabeled_index, inputs["unlabeled_index"]) and pseudo.labels.tolist() == label
    assert pseudo.weights.tolist() == pytest.approx(weights, rel=1e-6)


def test_round_zero_trains_on_the_labels_alone():
    model = make(SelfTrainingModel, SelfTrainingConfig, selection="all").eval()
    inputs = batch()
    output = model(**inputs)
    with torch.no_grad():
        assert output.loss.item() == pytest.approx(supervised_part(model, inputs), rel=1e-5)
    assert model.last_pseudo_labels is None and model.last_loss_terms["round"].item() == 0


def test_data_distillation_targets_average_the_teachers_softmax_over_transforms():
    model = make(DataDistillationModel, DataDistillationConfig, threshold=0.0).eval()
    perturb_teacher(model)
    model.progress.fill_(0.75)  # round 1 of 1
    inputs = batch(mu=1)  # the loop runs the teacher once per image and transform
    transforms = model.config.transforms
    assert transforms == ["identity", "hflip", "scale_0.8", "scale_1.2", "hflip+scale_0.8", "hflip+scale_1.2"]
    expected = []
    with torch.no_grad():
        for image in inputs["unlabeled_pixels"]:
            softmaxes = [loop_softmax(model.teacher(pixel_values=apply_transform(t, image[None])).logits[0])
                         for t in transforms]
            expected.append([sum(s[c] for s in softmaxes) / len(transforms) for c in range(3)])
        ensemble = model.teacher_probabilities(model.teacher, inputs["unlabeled_pixels"])
    assert ensemble.double().tolist() == [pytest.approx(row, rel=1e-5) for row in expected]

    output = model(**inputs)
    labels = [row.index(max(row)) for row in expected]
    assert model.last_pseudo_labels.labels.tolist() == labels
    with torch.no_grad():
        student_logits = model.logits(inputs["unlabeled_pixels"])
        supervised = supervised_part(model, inputs)
    unlabeled = sum(-loop_log_softmax(student_logits[i])[y] for i, y in enumerate(labels)) / len(labels)
    assert output.loss.item() == pytest.approx(supervised + unlabeled, rel=1e-5)


@pytest.mark.parametrize("soft_labels", [True, False])
def test_noisy_student_loss_against_a_loop(soft_labels):
    model = make(NoisyStudentModel, NoisyStudentConfig, soft_labels=soft_labels).eval()  # eval: no noise
    perturb_teacher(model)
    model.progress.fill_(0.3)  # round 1
    inputs = batch()
    threshold = model.config.threshold = split_threshold(model, inputs["unlabeled_pixels"])
    output = model(**inputs)
    with torch.no_grad():
        teacher_logits = model.teacher(pixel_values=inputs["unlabeled_pixels"]).logits
        student_logits = model.logits(inputs["unlabeled_pixels"])
        supervised = supervised_part(model, inputs)
    unlabeled, used = 0.0, 0
    for q_logits, p_logits in zip(teacher_logits, student_logits):
        q, log_p = loop_softmax(q_logits), loop_log_softmax(p_logits)
        if max(q) < threshold:  # the confidence filter
            continue
        used += 1
        target = q if soft_labels else [float(c == q.index(max(q))) for c in range(3)]
        unlabeled += -sum(t * lp for t, lp in zip(target, log_p))
    unlabeled /= len(teacher_logits)
    assert 0 < used < len(teacher_logits)
    assert output.loss.item() == pytest.approx(supervised + unlabeled, rel=1e-5)
    assert model.last_loss_terms["mask_rate"].item() == pytest.approx(used / len(teacher_logits))


def test_the_students_noise_is_on_in_training_and_off_in_eval():
    model = make(NoisyStudentModel, NoisyStudentConfig)
    assert model.config.classifier_dropout == 0.5
    pixels = batch()["labeled_pixels"]
    model.eval()
    assert torch.equal(model.student_inputs(pixels), pixels)
    with torch.no_grad():
        assert torch.equal(model.logits(pixels), model.logits(pixels))
    model.train()
    assert not torch.equal(model.student_inputs(pixels), pixels)  # RandAugment
    features = torch.randn(4, 16, 1, 1)  # the head's input: dropout's pre-hook on the training head only
    head = model.classifier.classifier
    assert not torch.equal(head(features), head(features))
    assert torch.equal(model.teacher.classifier(features), model.teacher.classifier(features))  # teacher: eval
    # stochastic depth where the backbone config has it; ResNet has none
    convnext = NoisyStudentConfig(backbone_config=ConvNextConfig(depths=[1, 1], hidden_sizes=[8, 16]))
    assert convnext.backbone_config.drop_path_rate == 0.2
    assert "drop_path_rate" not in model.config.backbone_config.to_dict()


# --- an external teacher ------------------------------------------------------------------------------------------

def save_teacher(folder, names=CLASSES):
    torch.manual_seed(3)
    teacher = build_image_classifier(with_labels(SelfTrainingConfig(backbone_config=tiny_backbone_config()), names))
    teacher.save_pretrained(folder)
    return teacher


def test_a_teacher_path_skips_round_zero(tmp_path):
    teacher = save_teacher(tmp_path / "teacher")
    model = make(NoisyStudentModel, NoisyStudentConfig, teacher=str(tmp_path / "teacher"), rounds=2, threshold=0.0)
    model.load_pretrained_parts()
    assert states_equal(model.external_teacher, teacher)
    assert model.config.num_phases == 2 and [model.round_at(p) for p in (0.0, 0.49, 0.5, 1.0)] == [1, 1, 2, 2]
    model.eval()
    inputs = batch()
    model(**inputs)  # at progress 0: round 1, labelled by the external teacher
    with torch.no_grad():
        expected = teacher.eval()(pixel_values=inputs["unlabeled_pixels"]).logits.argmax(-1)
    assert torch.equal(model.last_pseudo_labels.labels, expected)
    student = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    step_done(model, 0.5)  # round 2: the student's copy teaches; a new student starts
    assert model.current_round == 2 and all(torch.equal(student[k], v) for k, v in model.teacher.state_dict().items())

    model.save_pretrained(tmp_path / "saved")  # the teacher's architecture and weights travel with the model
    reloaded = NoisyStudentModel.from_pretrained(tmp_path / "saved")
    assert states_equal(reloaded, model) and reloaded.config.teacher_config.model_type == "resnet"


def test_a_teacher_with_other_labels_is_refused(tmp_path):
    save_teacher(tmp_path / "teacher", names=("cat", "dog", "bird"))
    model = make(SelfTrainingModel, SelfTrainingConfig, teacher=str(tmp_path / "teacher"))
    with pytest.raises(HfSslError, match="the teacher .* predicts the classes"):
        model.load_pretrained_parts()
    with pytest.raises(ValueError, match="no folder"):
        SelfTrainingConfig(teacher=str(tmp_path / "missing"))


def test_the_top_k_buffer_grows_with_the_indices_seen_stays_out_of_checkpoints_and_resets_each_round():
    """Without the unlabelled set's size in the config (a model built outside `hf-ssl pretrain`)."""
    model = make(SelfTrainingModel, SelfTrainingConfig, selection="top_k", top_k=1, rounds=1).eval()
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1]])
    first = model.select(probs, torch.tensor([0, 3, 5]))
    assert first.weights.tolist() == [1, 0, 1] and model.top_k_selector.num_unlabeled == 6
    second = model.select(torch.tensor([[0.95, 0.03, 0.02]]), torch.tensor([20]))  # grows, keeps what it saw
    assert model.top_k_selector.num_unlabeled == 21 and second.weights.tolist() == [1]
    assert model.top_k_selector.confidences[[0, 3, 5, 20]].tolist() == pytest.approx([0.9, 0.6, 0.8, 0.95])
    assert model.select(probs[:1], torch.tensor([0])).weights.tolist() == [0]  # 0.95 is class 0's top 1 now
    assert not [k for k in model.state_dict() if "top_k" in k]
    step_done(model, 0.5)  # round 1 starts: a new teacher, nothing seen yet
    assert model.top_k_selector.confidences.isinf().all()


def test_a_top_k_buffer_sized_by_the_config_is_checkpointed_and_restored(tmp_path):
    """`hf-ssl pretrain` sets `num_unlabeled` from the data: the buffer is built at that size and saved, so a run
    resumed mid-round selects as the uninterrupted one (the grown buffer of a model without it is not saved)."""
    model = make(SelfTrainingModel, SelfTrainingConfig, selection="top_k", top_k=1, rounds=1, num_unlabeled=8)
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1]])
    model.select(probs, torch.tensor([0, 3, 5]))
    assert model.top_k_selector.num_unlabeled == 8  # not grown to the largest index seen
    model.save_pretrained(tmp_path / "checkpoint")
    resumed = SelfTrainingModel.from_pretrained(tmp_path / "checkpoint")
    for name in ("confidences", "predictions"):
        assert torch.equal(getattr(resumed.top_k_selector, name), getattr(model.top_k_selector, name))
    # what it saw before the checkpoint still sets class 0's threshold: 0.7 is not in its top 1
    assert resumed.select(torch.tensor([[0.7, 0.2, 0.1]]), torch.tensor([1])).weights.tolist() == [0]
