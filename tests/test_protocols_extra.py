"""Tests of the few-shot and fine-tune protocols and of the `evaluate` metric modules shipped in the package."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from hf_ssl.data.datasets import ImageDataset
from hf_ssl.errors import HfSslError
from hf_ssl.evaluation.few_shot import few_shot, sample_few_shot_indices

from conftest import run_cli, tiny_backbone_config

# ----------------------------------------------------------------------------- few-shot sampling


def test_few_shot_sampling_takes_exactly_k_per_class_uniformly():
    # class sizes 5, 12, 40 (class 3 absent from the labels but below num_classes would be an error, tested below)
    labels = torch.tensor([0] * 5 + [1] * 12 + [2] * 40)[torch.randperm(57, generator=torch.Generator().manual_seed(1))]
    shots, draws = 3, 3000
    counts = torch.zeros(57)
    for draw in range(draws):
        chosen = sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(draw))
        assert chosen.unique().numel() == chosen.numel() == 3 * shots
        assert torch.bincount(labels[chosen], minlength=3).tolist() == [shots] * 3
        counts[chosen] += 1
    # each example of class c is drawn with probability shots / n_c; binomial standard error, 5 sigma
    class_size = torch.bincount(labels).float()[labels]
    p = shots / class_size
    z = (counts / draws - p) / torch.sqrt(p * (1 - p) / draws).clamp_min(1e-12)
    assert z.abs().max() < 5, z.abs().max()
    assert counts[class_size == 5].min() > 0.5 * draws  # 3 of 5: every one in 60% of the draws
    # different seeds give different subsets, the same seed the same one
    first = sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(0))
    assert torch.equal(first, sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(1)))


def test_few_shot_too_many_shots_is_one_clear_error():
    labels = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(HfSslError, match="class 1 has 2"):
        sample_few_shot_indices(labels, 3, 2, torch.Generator().manual_seed(0))
    with pytest.raises(HfSslError, match="class 2 has 0"):
        sample_few_shot_indices(labels, 1, 3, torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------- few-shot accuracy


def _gaussian_classes(num_classes=4, dim=8, n_train=200, n_test=300, spread=1.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2 * torch.randn(num_classes, dim, generator=g)
    y_train = torch.arange(n_train) % num_classes
    y_test = torch.randint(0, num_classes, (n_test,), generator=g)
    x_train = centers[y_train] + spread * torch.randn(n_train, dim, generator=g)
    x_test = centers[y_test] + spread * torch.randn(n_test, dim, generator=g)
    return x_train, y_train, x_test, y_test


def test_few_shot_matches_sklearn_on_the_same_subsets():
    x_train, y_train, x_test, y_test = _gaussian_classes()
    shots, episodes, wd = 5, 3, 1e-2
    result = few_shot(x_train, y_train, x_test, y_test, 4, shots=shots, episodes=episodes, weight_decay=wd, seed=7)
    assert result.episodes == episodes and len(result.episode_accuracies) == episodes
    reference = []
    for episode in range(episodes):
        subset = sample_few_shot_indices(y_train, shots, 4, torch.Generator().manual_seed(7 + episode)).numpy()
        x, y = x_train.double().numpy()[subset], y_train.numpy()[subset]
        mean, std = x.mean(0), x.std(0)
        n = len(y)
        # mean CE + wd ||W||^2  ==  sklearn's  0.5 ||W||^2 + C * sum CE  with C = 1 / (2 wd n)
        clf = LogisticRegression(C=1 / (2 * wd * n), tol=1e-10, max_iter=10000).fit((x - mean) / std, y)
        predictions = clf.predict((x_test.double().numpy() - mean) / std)
        reference.append(float((predictions == y_test.numpy()).mean()))
    for got, expected in zip(result.episode_accuracies, reference):
        assert abs(got - expected) <= 1 / len(y_test) + 1e-12, (result.episode_accuracies, reference)
    assert math.isclose(result.accuracy, float(np.mean(result.episode_accuracies)))
    assert math.isclose(result.std, float(np.std(result.episode_accuracies, ddof=1)))
    assert len(set(reference)) > 1  # the episodes really differ


def test_few_shot_separable_is_perfect_and_random_labels_are_at_chance():
    x_train, y_train, x_test, y_test = _gaussian_classes(spread=0.05)
    assert few_shot(x_train, y_train, x_test, y_test, 4, shots=2, episodes=2).accuracy == 1.0
    shuffled = y_train[torch.randperm(len(y_train), generator=torch.Generator().manual_seed(3))]
    x_noise = torch.randn(2000, 8, generator=torch.Generator().manual_seed(4))
    y_noise = torch.randint(0, 4, (2000,), generator=torch.Generator().manual_seed(5))
    chance = few_shot(x_train, shuffled, x_noise, y_noise, 4, shots=10, episodes=3).accuracy
    assert abs(chance - 0.25) < 0.05, chance


# ----------------------------------------------------------------------------- fine-tune


def _brightness_images(per_class: int, seed: int, size: int = 16):
    """RGB images whose class is their brightness level (3 classes), with pixel noise: separable, and unchanged in
    kind by a horizontal flip."""
    import PIL.Image

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_class)
    rng.shuffle(labels)
    images = [PIL.Image.fromarray(np.clip(50 + 75 * c + rng.integers(-20, 21, (size, size, 3)), 0, 255).astype(np.uint8))
              for c in labels]
    return images, labels


@pytest.fixture(scope="module")
def brightness_dataset():
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["dark", "mid", "light"])})
    splits = {}
    for split, per_class, seed in (("train", 32, 0), ("test", 20, 1)):
        images, labels = _brightness_images(per_class, seed)
        splits[split] = datasets.Dataset.from_dict({"image": images, "label": labels.tolist()}, features=features)
    return ImageDataset(name="brightness", splits=splits, image_column="image", label_column="label",
                        class_names=["dark", "mid", "light"], train_split="train", test_split="test")


@pytest.fixture(scope="module")
def resnet_folder(tmp_path_factory):
    """A randomly initialised tiny ResNet exported as hf-ssl does: native class + its image processor."""
    from transformers import AutoModel

    from hf_ssl.hub.export import image_processor_for

    folder = tmp_path_factory.mktemp("resnet-encoder")
    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config("resnet-test", 16)).save_pretrained(folder)
    image_processor_for(16, [0.5] * 3, [0.25] * 3).save_pretrained(folder)
    return folder


def test_finetune_image_reaches_high_accuracy_and_equals_the_saved_classifier(resnet_folder, brightness_dataset,
                                                                              tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hf_ssl.evaluation.finetune import FinetuneSettings, finetune_image_classifier

    settings = FinetuneSettings(epochs=6, learning_rate=3e-3, batch_size=16)
    entry = finetune_image_classifier(resnet_folder, brightness_dataset, settings, save_to=tmp_path / "classifier")
    assert entry["protocol"] == "finetune" and entry["split"] == "test"
    assert entry["params"]["steps"] == 6 * 96 // 16
    assert entry["value"] >= 0.9, entry
    assert not any(p.name.startswith("checkpoint") for p in resnet_folder.iterdir())  # nothing written there
    # independent evaluation: the saved classifier as plain transformers loads it, its own processor on PIL images
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path / "classifier").eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "classifier")
    test = brightness_dataset.splits["test"]
    with torch.no_grad():
        logits = classifier(**processor(images=list(test["image"]), return_tensors="pt")).logits
    accuracy = float((logits.argmax(-1).numpy() == np.array(test["label"])).mean())
    assert accuracy == entry["value"]
    assert classifier.config.id2label[2] == "light"


def _sentiment_texts(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    words = [["good", "great", "nice", "happy", "fine"], ["bad", "awful", "poor", "sad", "ugly"]]
    filler = ["the", "movie", "was", "very", "really", "plot", "and", "a"]
    labels = rng.integers(0, 2, n).tolist()
    texts = [" ".join(rng.permutation(list(rng.choice(filler, 4)) + list(rng.choice(words[y], 2)))) for y in labels]
    return texts, labels


def test_finetune_text_encoder_through_the_cli(tmp_path, capsys):
    """An mlm-style export (BertForMaskedLM + fast WordPiece tokenizer) fine-tuned as a sequence classifier on a local
    csv dataset with text and label columns; stdout stays the JSON of the results."""
    import csv

    from transformers import BertConfig, BertForMaskedLM

    from hf_ssl.cli import main
    from hf_ssl.data.tokenizers import train_wordpiece

    data = tmp_path / "reviews"
    data.mkdir()
    for split, n, seed in (("train", 96, 0), ("test", 40, 1)):
        texts, labels = _sentiment_texts(n, seed)
        with open(data / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, labels))
    model_dir = tmp_path / "bert"
    tokenizer = train_wordpiece(_sentiment_texts(200, 2)[0], vocab_size=60)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    BertForMaskedLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    main(["evaluate", "--model", str(model_dir), "--dataset", str(data), "--protocol", "finetune", "--epochs", "8",
          "--learning_rate", "3e-3", "--finetune_batch_size", "16"])
    printed = json.loads(capsys.readouterr().out)
    entry = printed["finetune"]
    assert entry["dataset"] == "reviews" and entry["split"] == "test" and entry["params"]["steps"] == 8 * 96 // 16
    assert "horizontal_flip" not in entry["params"]
    assert entry["value"] >= 0.9, entry
    assert json.loads((model_dir / "eval_results.json").read_text())["finetune"]["value"] == entry["value"]


@pytest.mark.parametrize("argv, message", [
    (["--protocol", "knn,semi-supervised"], "unknown protocol 'semi-supervised' for an image encoder"),
    (["--protocol", "few-shot", "--shots", "500"], "class 0 has"),
])
def test_evaluate_bad_protocol_input_is_one_line(resnet_folder, capsys, argv, message):
    from hf_ssl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", str(resnet_folder), "--dataset", "digits", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    # transformers' own weight-loading progress bar may precede it; the error itself is the one last line
    assert err.splitlines()[-1].startswith("hf-ssl: error: ") and message in err.splitlines()[-1], err
    assert "Traceback" not in err
