"""The supervised baseline, Pseudo-Label and entropy minimisation: their losses against float64 loops of the papers'
formulas, the ramp-ups, and the export: a native classifier that `pipeline("image-classification")` runs where hf_ssl
is blocked, labelled with the dataset's class names, and its card."""

from __future__ import annotations

import json
import math

import pytest
import torch

from huggingface_hub.errors import StrictDataclassClassValidationError

from conftest import SHAPE_CLASSES, run_python, tiny_backbone_config
from hf_ssl.losses.entropy_minimization import entropy_loss
from hf_ssl.losses.pseudo_label import pseudo_label_loss
from hf_ssl.modalities import modality_of_folder
from hf_ssl.modeling.entropy_minimization import EntropyMinimizationConfig, EntropyMinimizationModel
from hf_ssl.modeling.pseudo_label import PseudoLabelConfig, PseudoLabelModel
from hf_ssl.modeling.supervised import SupervisedConfig, SupervisedModel
from hf_ssl.nn.ramp_up import linear_ramp_up, sigmoid_ramp_up


def loop_cross_entropy(logits: torch.Tensor, target: int) -> float:
    """-log softmax(logits)[target] in float64, one example, written out."""
    values = [float(v) for v in logits.detach().double()]
    top = max(values)
    log_normaliser = top + math.log(sum(math.exp(v - top) for v in values))
    return log_normaliser - values[target]


def loop_entropy(logits: torch.Tensor) -> float:
    values = [float(v) for v in logits.detach().double()]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    probabilities = [e / sum(exps) for e in exps]
    return -sum(p * math.log(p) for p in probabilities if p > 0)


# --- the building blocks ------------------------------------------------------------------------------------------

def test_pseudo_label_loss_is_the_masked_cross_entropy_over_all_unlabelled_examples():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 5, generator=generator) * 3
    targets = torch.randint(0, 5, (12,), generator=generator)
    weights = (torch.rand(12, generator=generator) > 0.4).float()
    weights[0] = 0.7  # "weighted" selection: any weight in [0, 1]
    expected = sum(float(w) * loop_cross_entropy(logits[i], int(targets[i])) for i, w in enumerate(weights)) / 12
    assert pseudo_label_loss(logits, targets, weights).item() == pytest.approx(expected, rel=1e-5)
    unmasked = sum(loop_cross_entropy(logits[i], int(targets[i])) for i in range(12)) / 12
    assert pseudo_label_loss(logits, targets).item() == pytest.approx(unmasked, rel=1e-5)

    logits.requires_grad_(True)
    weights.requires_grad_(True)
    pseudo_label_loss(logits, targets, weights).backward()
    assert weights.grad is None  # the weights are constants
    assert bool((logits.grad[weights.detach() == 0] == 0).all())  # a masked example gets no gradient
    assert pseudo_label_loss(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_entropy_loss_is_the_mean_prediction_entropy():
    logits = torch.randn(9, 4, generator=torch.Generator().manual_seed(1)) * 4
    logits[0] = torch.tensor([60.0, -60.0, 0.0, 0.0])  # saturated: p log p -> 0 must stay finite
    expected = sum(loop_entropy(row) for row in logits) / 9
    assert entropy_loss(logits).item() == pytest.approx(expected, rel=1e-5)
    assert entropy_loss(torch.zeros(3, 4)).item() == pytest.approx(math.log(4))  # uniform: log K


def test_ramp_ups():
    assert sigmoid_ramp_up(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_ramp_up(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_ramp_up(10, 10) == 1.0 and sigmoid_ramp_up(50, 10) == 1.0 and sigmoid_ramp_up(-3, 10) == pytest.approx(
        math.exp(-5))
    assert sigmoid_ramp_up(0.3, 0) == 1.0  # no ramp-up
    # Lee's alpha(t) / alpha_f: 0 until T1, linear to T2, 1 after
    assert [linear_ramp_up(t, 0.2, 0.6) for t in (0.0, 0.2, 0.4, 0.6, 0.9)] == pytest.approx([0, 0, 0.5, 1, 1])
    assert linear_ramp_up(0.5, 0.5, 0.5) == 1.0 and linear_ramp_up(0.49, 0.5, 0.5) == 0.0


# --- the methods' losses ------------------------------------------------------------------------------------------

def with_labels(config):
    config.id2label = dict(enumerate(SHAPE_CLASSES))
    config.label2id = {name: i for i, name in enumerate(SHAPE_CLASSES)}
    return config


def batch(mu: int = 3, size: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return dict(labeled_pixels=torch.randn(size, 3, 16, 16, generator=generator),
                labels=torch.randint(0, 3, (size,), generator=generator),
                unlabeled_pixels=torch.randn(size * mu, 3, 16, 16, generator=generator),
                unlabeled_index=torch.randperm(size * mu, generator=generator))


def eval_model(model_class, config):
    """In eval mode, so that each image's logits do not depend on the batch (BatchNorm) and the loop can use them."""
    torch.manual_seed(0)
    return model_class(with_labels(config)).eval()


def test_supervised_is_the_labelled_cross_entropy_and_loads_no_unlabelled_data():
    model = eval_model(SupervisedModel, SupervisedConfig(backbone_config=tiny_backbone_config()))
    inputs = batch()
    inputs.pop("unlabeled_pixels"), inputs.pop("unlabeled_index")
    output = model(**inputs)
    logits = model.logits(inputs["labeled_pixels"])
    expected = sum(loop_cross_entropy(logits[i], int(y)) for i, y in enumerate(inputs["labels"])) / 6
    assert output.loss.item() == pytest.approx(expected, rel=1e-5)
    assert model.last_pseudo_labels is None
    with pytest.raises(StrictDataclassClassValidationError, match="unlabeled_ratio must be 0"):
        SupervisedConfig(unlabeled_ratio=7)


@pytest.mark.parametrize("progress", [0.0, 0.1, 0.5])
def test_pseudo_label_loss_against_lees_formula_with_usb_threshold(progress):
    config = PseudoLabelConfig(backbone_config=tiny_backbone_config(), unlabeled_ratio=3)
    model = eval_model(PseudoLabelModel, config)
    model.progress.fill_(progress)
    inputs = batch()
    with torch.no_grad():
        logits, unlabeled_logits = model.logits(inputs["labeled_pixels"]), model.logits(inputs["unlabeled_pixels"])
    confidences = unlabeled_logits.double().softmax(-1).max(-1).values.sort().values
    model.config.threshold = float(confidences[8] + confidences[9]) / 2  # half the images pass, none at the edge
    output = model(**inputs)

    supervised = sum(loop_cross_entropy(logits[i], int(y)) for i, y in enumerate(inputs["labels"])) / 6
    unlabeled, used = 0.0, []
    for i in range(18):
        row = unlabeled_logits[i]
        probabilities = row.double().softmax(-1)
        if float(probabilities.max()) >= model.config.threshold:
            unlabeled += loop_cross_entropy(row, int(probabilities.argmax()))
            used.append(i)
    unlabeled /= 18  # over every unlabelled image, used or not
    alpha = 3.0 * min(max(progress / 0.4, 0.0), 1.0)  # alpha_f = 3, ramp over the first 40% of training
    assert output.loss.item() == pytest.approx(supervised + alpha * unlabeled, rel=1e-4, abs=1e-6)
    assert model.last_loss_terms["unlabeled_loss"].item() == pytest.approx(unlabeled, rel=1e-4)
    assert model.last_loss_terms["mask_rate"].item() == pytest.approx(len(used) / 18)

    pseudo = model.last_pseudo_labels  # what the monitor judges: keyed by the batch's unlabelled positions
    assert torch.equal(pseudo.unlabeled_index, inputs["unlabeled_index"])
    assert torch.equal(pseudo.labels, unlabeled_logits.argmax(-1))
    assert (pseudo.weights > 0).nonzero().flatten().tolist() == used


def test_pseudo_label_targets_are_constants():
    # with the targets the logits' own argmax, d l_u / d logits = (softmax - onehot(argmax)) / N: no term from the targets
    logits = (torch.randn(18, 3, generator=torch.Generator().manual_seed(2)) * 2).requires_grad_(True)
    pseudo_label_loss(logits, logits.argmax(-1)).backward()
    expected = (logits.detach().softmax(-1) - torch.nn.functional.one_hot(logits.argmax(-1), 3)) / 18
    torch.testing.assert_close(logits.grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("ramp_up_length", [0.0, 0.5])
def test_entropy_minimization_loss_against_grandvalet_bengio(ramp_up_length):
    config = EntropyMinimizationConfig(backbone_config=tiny_backbone_config(), unlabeled_ratio=3, entropy_weight=0.3,
                                       ramp_up_length=ramp_up_length)
    model = eval_model(EntropyMinimizationModel, config)
    model.progress.fill_(0.25)
    inputs = batch()
    output = model(**inputs)
    with torch.no_grad():
        logits, unlabeled_logits = model.logits(inputs["labeled_pixels"]), model.logits(inputs["unlabeled_pixels"])
    supervised = sum(loop_cross_entropy(logits[i], int(y)) for i, y in enumerate(inputs["labels"])) / 6
    entropy = sum(loop_entropy(row) for row in unlabeled_logits) / 18
    weight = 0.3 * (math.exp(-5 * (1 - 0.25 / ramp_up_length) ** 2) if ramp_up_length else 1.0)
    assert output.loss.item() == pytest.approx(supervised + weight * entropy, rel=1e-4)
    assert model.last_pseudo_labels is None


def test_methods_train_on_the_labels_alone_without_unlabelled_data():
    for model_class, config_class in ((PseudoLabelModel, PseudoLabelConfig),
                                      (EntropyMinimizationModel, EntropyMinimizationConfig)):
        model = eval_model(model_class, config_class(backbone_config=tiny_backbone_config()))
        inputs = batch()
        loss = model(inputs["labeled_pixels"], inputs["labels"]).loss
        assert loss.item() == pytest.approx(
            torch.nn.functional.cross_entropy(model.logits(inputs["labeled_pixels"]), inputs["labels"]).item())


def test_classifier_dropout_acts_on_the_head_input_in_training_only():
    config = PseudoLabelConfig(backbone_config=tiny_backbone_config(), classifier_dropout=0.5)
    model = eval_model(PseudoLabelModel, config)
    pixels = torch.randn(4, 3, 16, 16)
    clean = model.logits(pixels)
    torch.testing.assert_close(model.logits(pixels), clean)  # eval: no dropout
    model.train()
    for module in model.modules():  # keep BatchNorm's statistics fixed: only dropout may differ
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    assert not torch.allclose(model.logits(pixels), clean)


# --- the export (one shared tiny run) -----------------------------------------------------------------------------

def test_export_runs_in_the_image_classification_pipeline_where_hf_ssl_is_blocked(semi_supervised_run):
    out, data, _ = semi_supervised_run
    image = next((data / "test" / "square").glob("*.png"))
    result = run_python(f"""
        import json
        from PIL import Image
        from transformers import AutoConfig, pipeline
        classifier = pipeline("image-classification", model={str(out)!r})
        predictions = classifier(Image.open({str(image)!r}), top_k=3)
        config = AutoConfig.from_pretrained({str(out)!r})
        print(json.dumps(dict(labels=sorted(p["label"] for p in predictions), architectures=config.architectures,
                              id2label=[config.id2label[i] for i in range(config.num_labels)])))
    """)
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["labels"] == sorted(SHAPE_CLASSES)
    assert seen["id2label"] == list(SHAPE_CLASSES)
    assert seen["architectures"] == ["ResNetForImageClassification"]


def test_run_logs_pseudo_label_quality_evaluates_and_writes_the_classifier_card(semi_supervised_run):
    out, _, result = semi_supervised_run
    assert "pseudo_label_accuracy" in result.stdout + result.stderr  # the monitor's logs
    assert modality_of_folder(out).name == "image-classification"
    results = json.loads((out / "eval_results.json").read_text())
    accuracy = results["accuracy"]
    assert 0.0 <= accuracy["value"] <= 1.0 and accuracy["split"] == "test"
    assert set(accuracy["params"]["per_class"]) == set(SHAPE_CLASSES)
    assert accuracy["params"]["num_labeled"] == 12 and accuracy["params"]["num_test_images"] == 12
    card = (out / "README.md").read_text()
    assert "pipeline_tag: image-classification" in card
    assert 'pipeline("image-classification"' in card
    assert "4 labels per class" in card and "12 in all" in card
    assert "top-1 accuracy (12 labels, 4 per class)" in card  # the model-index names how many labels were used
    for name in SHAPE_CLASSES:
        assert f"| {name} | 4 |" in card  # labelled images per class
        assert f"| {name} | {100 * accuracy['params']['per_class'][name]:.2f}% |" in card


def test_a_classifier_folder_belongs_to_the_image_classification_modality_alone(semi_supervised_run):
    from transformers import ResNetConfig, ViTConfig

    from hf_ssl.modalities import MODALITIES, DataSpec, EvaluationSpec

    for config in (ResNetConfig(architectures=["ResNetForImageClassification"]),
                   ViTConfig(architectures=["ViTForImageClassification"])):
        assert [m.name for m in MODALITIES.values() if m.recognizes(config)] == ["image-classification"]
    # `hf-ssl evaluate`'s frozen-feature protocols run on the classifier's backbone
    out, data, _ = semi_supervised_run
    results = MODALITIES["image-classification"].evaluate(
        out, EvaluationSpec(protocols=("knn",), data=DataSpec(f"imagefolder:{data}"), k=3))
    assert set(results) == {"knn"} and 0.0 <= results["knn"]["value"] <= 1.0


def test_any_image_classification_backbone_and_starting_from_an_encoder_checkpoint(tmp_path):
    from transformers import AutoModel

    vit = eval_model(PseudoLabelModel, PseudoLabelConfig(backbone_config=tiny_backbone_config("vit-test")))
    assert type(vit.exported_model()).__name__ == "ViTForImageClassification"
    assert vit.logits(torch.randn(2, 3, 16, 16)).shape == (2, 3)

    # --backbone CHECKPOINT: an encoder's weights into the classifier's backbone; the head stays as it was
    encoder = AutoModel.from_config(tiny_backbone_config())
    encoder.save_pretrained(tmp_path)
    model = eval_model(EntropyMinimizationModel, EntropyMinimizationConfig(backbone_config=tiny_backbone_config()))
    head = {k: v.clone() for k, v in model.classifier.classifier.state_dict().items()}
    model.load_encoder_weights(str(tmp_path))
    for name, value in encoder.state_dict().items():
        assert torch.equal(model.classifier.base_model.state_dict()[name], value), name
    assert all(torch.equal(model.classifier.classifier.state_dict()[k], v) for k, v in head.items())
