"""The data of semi-supervised training: the labelled subset (exactly K per class, seeded, recorded), a partly empty
label column, the items mixing labelled and unlabelled images, the weak-view collator, and the hidden labels, which
reach the pseudo-label monitor and nothing the training step reads."""

from __future__ import annotations

import json
import math

import datasets
import pytest
import torch

from conftest import SHAPE_CLASSES
from huggingface_hub.errors import StrictDataclassClassValidationError

from hf_ssl.data.collators import semi_supervised_collator
from hf_ssl.data.labeled_subset import labels_with_missing, select_labeled_subset
from hf_ssl.data.semi_supervised import SemiSupervisedDataset, hide_labels
from hf_ssl.data.transforms import flip_and_shift
from hf_ssl.errors import HfSslError
from hf_ssl.modalities import get_modality
from hf_ssl.modalities.image_classification import LABELED_SUBSET_FILE, PseudoLabelMonitorCallback
from hf_ssl.modeling.method_model import SSL_SUBDIR
from hf_ssl.modeling.pseudo_label import PseudoLabelConfig, PseudoLabelModel
from hf_ssl.modeling.semi_supervised import PseudoLabels


def class_labels(num_classes: int = 10, per_class: int = 30, seed: int = 0) -> torch.Tensor:
    """Shuffled labels, `per_class` of each class."""
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))]


# --- the labelled subset ------------------------------------------------------------------------------------------

def test_exactly_k_labels_per_class_sorted_and_unique():
    labels = class_labels()
    ids = select_labeled_subset(labels, labels_per_class=4, seed=0)
    assert ids.dtype == torch.long and torch.equal(ids, ids.sort().values) and ids.unique().numel() == ids.numel()
    assert torch.bincount(labels[ids], minlength=10).tolist() == [4] * 10


def test_subset_is_reproducible_from_its_seed_alone():
    labels = class_labels()
    torch.manual_seed(123)
    first = select_labeled_subset(labels, labels_per_class=4, seed=7)
    torch.manual_seed(456)  # the global RNG plays no part
    torch.rand(1000)
    assert torch.equal(first, select_labeled_subset(labels, labels_per_class=4, seed=7))
    assert not torch.equal(first, select_labeled_subset(labels, labels_per_class=4, seed=8))


def test_labeled_fraction_keeps_each_class_share_and_at_least_one():
    labels = torch.cat([torch.zeros(100), torch.ones(30), torch.full((3,), 2)]).long()
    ids = select_labeled_subset(labels, labeled_fraction=0.1, seed=0)
    assert torch.bincount(labels[ids], minlength=3).tolist() == [10, 3, 1]  # round(0.3) = 0 -> at least 1


def test_partly_empty_label_column_is_used_as_it_is():
    labels = class_labels(3, 10)
    labels[::4] = -1  # examples without a label
    assert torch.equal(select_labeled_subset(labels), (labels >= 0).nonzero().flatten())  # neither K nor F: all known
    ids = select_labeled_subset(labels, labels_per_class=2, seed=0)
    assert bool((labels[ids] >= 0).all()) and torch.bincount(labels[ids]).tolist() == [2, 2, 2]

    column = datasets.Dataset.from_dict({"label": [0, None, 2, -1, 1]})
    assert labels_with_missing(column, "label").tolist() == [0, -1, 2, -1, 1]


def test_subset_errors_are_one_line():
    labels = class_labels(3, 5)
    with pytest.raises(HfSslError, match="class 0 has 5 labelled training examples, fewer than labels_per_class=6"):
        select_labeled_subset(labels, labels_per_class=6)
    with pytest.raises(HfSslError, match="class 3 has 0"):
        select_labeled_subset(labels, labels_per_class=1, num_classes=4)  # a class absent from the training labels
    with pytest.raises(HfSslError, match="not both"):
        select_labeled_subset(labels, labels_per_class=1, labeled_fraction=0.5)
    with pytest.raises(HfSslError, match="no training example has a label"):
        select_labeled_subset(torch.full((5,), -1))
    with pytest.raises(StrictDataclassClassValidationError, match="not both"):
        PseudoLabelConfig(labels_per_class=4, labeled_fraction=0.1)


def test_a_resumed_run_must_draw_the_same_subset(tmp_path):
    modality = get_modality("image-classification")
    path = tmp_path / LABELED_SUBSET_FILE
    settings = dict(labels_per_class=4, labeled_fraction=None, subset_seed=0)
    modality._check_or_write_subset(path, torch.tensor([1, 5, 9]), settings)
    modality._check_or_write_subset(path, torch.tensor([1, 5, 9]), settings)  # the same: fine
    with pytest.raises(HfSslError, match="another labelled subset"):
        modality._check_or_write_subset(path, torch.tensor([1, 5, 8]), settings)


# --- the items and the collator -----------------------------------------------------------------------------------

def test_items_mix_one_labelled_and_mu_unlabelled_images_covering_every_unlabelled_one_per_epoch():
    images = torch.arange(23, dtype=torch.uint8).view(23, 1, 1, 1).expand(23, 1, 2, 2).contiguous()
    labels = torch.full((23,), -1)
    labels[[2, 7, 11]] = torch.tensor([0, 1, 0])
    dataset = SemiSupervisedDataset(images, labels, unlabeled_ratio=3)
    unlabeled = [i for i in range(23) if i not in (2, 7, 11)]
    assert len(dataset) == max(3, math.ceil(20 / 3)) == 7
    seen = []
    for i in range(len(dataset)):
        item = dataset[i]
        assert int(item["labeled_pixels"][0, 0, 0]) == [2, 7, 11][i % 3]
        assert int(item["labels"]) == [0, 1, 0][i % 3]
        assert item["unlabeled_pixels"].shape == (3, 1, 2, 2) and item["unlabeled_index"].tolist() == [
            (i * 3 + j) % 20 for j in range(3)]
        assert [int(p[0, 0, 0]) for p in item["unlabeled_pixels"]] == [unlabeled[j] for j in item["unlabeled_index"]]
        seen += item["unlabeled_index"].tolist()
    assert set(seen) == set(range(20))  # one epoch covers every unlabelled example

    supervised = SemiSupervisedDataset(images, labels, unlabeled_ratio=0)
    assert len(supervised) == 3 and set(supervised[0]) == {"labeled_pixels", "labels"}


def tiny_config(**kwargs) -> PseudoLabelConfig:
    from conftest import tiny_backbone_config

    config = PseudoLabelConfig(backbone_config=tiny_backbone_config(), **kwargs)
    config.id2label = {i: name for i, name in enumerate(SHAPE_CLASSES)}
    config.label2id = {name: i for i, name in enumerate(SHAPE_CLASSES)}
    return config


def test_collator_stacks_weak_views_and_normalises():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (30, 3, 16, 16), dtype=torch.uint8)
    labels = class_labels(3, 10)
    dataset, _ = hide_labels(images, labels, select_labeled_subset(labels, 2, seed=0), unlabeled_ratio=2)
    items = [dataset[i] for i in range(4)]

    plain = semi_supervised_collator(tiny_config(unlabeled_ratio=2, horizontal_flip=False, max_translation=0.0))
    batch = plain(items)
    assert batch["labeled_pixels"].shape == (4, 3, 16, 16) and batch["labels"].shape == (4,)
    assert batch["unlabeled_pixels"].shape == (8, 3, 16, 16) and batch["unlabeled_index"].shape == (8,)
    # without augmentation: the normalised images, batch-major (rows 2i, 2i+1 are item i's)
    expected = plain.normalize(torch.stack([item["unlabeled_pixels"] for item in items]).flatten(0, 1))
    torch.testing.assert_close(batch["unlabeled_pixels"], expected, rtol=0, atol=0)

    two_views = semi_supervised_collator(tiny_config(unlabeled_ratio=2, unlabeled_views=2))(items)
    assert two_views["unlabeled_pixels"].shape == (2, 8, 3, 16, 16)
    assert not torch.equal(two_views["unlabeled_pixels"][0], two_views["unlabeled_pixels"][1])  # independent draws


def test_weak_augmentation_translates_by_at_most_an_eighth_with_reflect_padding():
    torch.manual_seed(0)
    image = torch.zeros(64, 1, 32, 32)
    image[:, :, 16, 16] = 1.0  # one bright pixel
    shifted = flip_and_shift(32, horizontal_flip=False, max_translation=0.125)(image)
    rows, cols = (shifted[:, 0] == 1).nonzero()[:, 1:].T
    assert shifted.shape == image.shape and bool((shifted.sum(dim=(1, 2, 3)) == 1).all())
    assert int((rows - 16).abs().max()) <= 4 and int((cols - 16).abs().max()) <= 4  # 12.5% of 32 px
    assert len(set(zip(rows.tolist(), cols.tolist()))) > 10  # each image its own draw
    assert flip_and_shift(32, horizontal_flip=False, max_translation=0.0) is None


# --- hidden labels ------------------------------------------------------------------------------------------------

def one_step(dataset: SemiSupervisedDataset, config: PseudoLabelConfig) -> tuple[dict[str, torch.Tensor], PseudoLabels]:
    """One seeded SGD step of a seeded model on the first 4 items through the method's collator."""
    torch.manual_seed(0)
    model = PseudoLabelModel(config).train()
    torch.manual_seed(1)
    batch = semi_supervised_collator(config)([dataset[i] for i in range(4)])
    loss = model(**batch).loss
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    return {**model.state_dict(), "loss": loss.detach()}, model.last_pseudo_labels


def test_corrupting_the_hidden_labels_leaves_a_training_step_bit_identical():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (30, 3, 16, 16), dtype=torch.uint8)
    labels = class_labels(3, 10)
    ids = select_labeled_subset(labels, labels_per_class=2, seed=0)
    corrupted = labels.clone()
    hidden_positions = torch.ones(30, dtype=torch.bool)
    hidden_positions[ids] = False
    corrupted[hidden_positions] = (labels[hidden_positions] + 1) % 3  # every hidden label wrong

    config = tiny_config(unlabeled_ratio=3, threshold=0.0)
    clean, hidden = hide_labels(images, labels, ids, config.unlabeled_ratio)
    dirty, dirty_hidden = hide_labels(images, corrupted, ids, config.unlabeled_ratio)
    assert not torch.equal(hidden, dirty_hidden)
    state, pseudo = one_step(clean, config)
    dirty_state, _ = one_step(dirty, config)
    assert state.keys() == dirty_state.keys()
    assert all(torch.equal(state[k], dirty_state[k]) for k in state), "a hidden label reached the training step"

    # ... and they do reach the monitor, which judges the same pseudo-labels differently
    monitors = [PseudoLabelMonitorCallback(h) for h in (hidden, dirty_hidden)]
    logs = []
    for monitor in monitors:
        model = type("Model", (torch.nn.Module,), {})()
        model.last_pseudo_labels = pseudo
        monitor.on_step_end(None, None, None, model=model)
        logs.append({"loss": 1.0})
        monitor.on_log(None, type("State", (), {"log_history": [], "global_step": 1})(), None, logs=logs[-1])
    assert logs[0]["pseudo_label_coverage"] == logs[1]["pseudo_label_coverage"] == 1.0  # threshold 0: all used
    assert logs[0]["pseudo_label_accuracy"] + logs[1]["pseudo_label_accuracy"] <= 1.0 + 1e-9  # never both right


def test_monitor_counts_accuracy_of_used_pseudo_labels_and_coverage():
    monitor = PseudoLabelMonitorCallback(torch.tensor([0, 1, 2, -1, 1]))  # position 3's label is truly unknown
    model = type("Model", (torch.nn.Module,), {})()
    state = type("State", (), {"log_history": [{"loss": 1.0, "step": 2}], "global_step": 2})()
    for index, labels, weights in (([0, 1, 2, 3], [0, 2, 2, 1], [1.0, 1.0, 0.0, 1.0]), ([4], [1], [0.5])):
        model.last_pseudo_labels = PseudoLabels(torch.tensor(index), torch.tensor(labels), torch.tensor(weights))
        monitor.on_step_end(None, state, None, model=model)
    logs = {"loss": 1.0}
    monitor.on_log(None, state, None, logs=logs)
    # used: positions 0, 1, 3, 4 of 5 seen; judged (label known): 0 (right), 1 (wrong), 4 (right)
    assert logs["pseudo_label_coverage"] == pytest.approx(4 / 5)
    assert logs["pseudo_label_accuracy"] == pytest.approx(2 / 3)
    assert state.log_history[-1]["pseudo_label_accuracy"] == pytest.approx(2 / 3)
    again = {"loss": 1.0}
    monitor.on_log(None, state, None, logs=again)
    assert "pseudo_label_coverage" not in again  # counted afresh after every log


# --- recorded in OUT (the shared tiny run) ------------------------------------------------------------------------

def test_labelled_subset_is_recorded_in_out_and_reproducible(semi_supervised_run):
    from hf_ssl.data.datasets import load_image_dataset

    out, data, _ = semi_supervised_run
    info = json.loads((out / SSL_SUBDIR / "training_info.json").read_text())
    dataset = load_image_dataset(f"imagefolder:{data}")
    labels = labels_with_missing(dataset.splits["train"], dataset.label_column)
    expected = select_labeled_subset(labels, labels_per_class=4, seed=0)
    assert info["labeled_example_ids"] == expected.tolist()
    assert info["num_labeled"] == 12 and info["num_unlabeled"] == 18 and info["num_train_images"] == 30
    # the model's config knows the unlabelled set's size (it sizes the buffers checkpoints carry)
    assert json.loads((out / SSL_SUBDIR / "config.json").read_text())["num_unlabeled"] == 18
    assert info["labeled_per_class"] == {name: 4 for name in SHAPE_CLASSES}
    assert info["labels_per_class"] == 4 and info["subset_seed"] == 0 and info["modality"] == "image-classification"
    saved = json.loads((out / "checkpoints" / LABELED_SUBSET_FILE).read_text())
    assert saved["labeled_example_ids"] == expected.tolist()
