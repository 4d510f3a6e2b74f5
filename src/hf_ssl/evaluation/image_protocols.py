"""Evaluation of an image encoder on a labelled dataset: kNN, linear probe and few-shot on frozen features, and
end-to-end fine-tuning.

Features come from the train split (the kNN memory bank / the probes' training set) and the test split;
both are computed once and shared by every frozen-feature protocol asked for.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from transformers import PreTrainedModel

from ..data.datasets import ImageDataset
from ..data.images import images_to_tensor, labels_to_tensor
from ..errors import HfSslError
from .features import extract_features
from .finetune import FinetuneSettings, finetune_image_classifier
from .few_shot import DEFAULT_EPISODES, DEFAULT_SHOTS, check_shots, few_shot
from .knn import knn_accuracy
from .linear_probe import linear_probe

FROZEN_PROTOCOLS = ("knn", "linear", "few-shot")  # scored on features computed once
PROTOCOLS = (*FROZEN_PROTOCOLS, "finetune")  # finetune trains the exported folder's classifier end to end


def check_image_protocols(protocols: Sequence[str]) -> None:
    """Raise :class:`HfSslError` for a protocol name an image encoder has not (callers check before loading)."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise HfSslError(f"unknown protocol '{unknown[0]}' for an image encoder (available: {', '.join(PROTOCOLS)})")


def evaluate_image_encoder(
    encoder: PreTrainedModel, dataset: ImageDataset, image_size: int, num_channels: int,
    image_mean: Sequence[float], image_std: Sequence[float], protocols: Sequence[str] = ("knn",),
    pooling: str = "auto", k: int = 20, temperature: float | None = 0.07, batch_size: int = 256,
    images: dict[str, torch.Tensor] | None = None, shots: int = DEFAULT_SHOTS, episodes: int = DEFAULT_EPISODES,
    model_dir: str | os.PathLike | None = None, finetune_settings: FinetuneSettings | None = None,
) -> dict[str, dict[str, Any]]:
    """Returns `{protocol: {"protocol", "dataset", "split", "value", "params"}}` (value = accuracy in [0, 1]).

    `images` may hold splits already converted to uint8 tensors at this size (pretraining has the train
    split in memory), so they are not decoded twice. "finetune" trains a copy of the exported folder `model_dir`
    (the encoder as users load it), not `encoder`.
    """
    check_image_protocols(protocols)
    if dataset.label_column is None or dataset.test_split is None:
        raise HfSslError(
            f"dataset {dataset.name} has no labels and test split to evaluate on "
            f"(labels: {dataset.label_column}, splits: {', '.join(dataset.splits)})"
        )
    if "finetune" in protocols and model_dir is None:
        raise HfSslError("finetune needs the exported model folder")
    train, test = dataset.train_split, dataset.test_split
    frozen = [p for p in protocols if p in FROZEN_PROTOCOLS]
    labels = {split: labels_to_tensor(dataset.splits[split], dataset.label_column) for split in (train, test)}
    num_classes = int(max(labels[s].max() for s in labels)) + 1
    if "few-shot" in protocols:
        check_shots(labels[train], shots, num_classes)  # before minutes of feature extraction
    features = {}
    for split in (train, test) if frozen else ():
        pixels = (images or {}).get(split)
        if pixels is None:
            pixels = images_to_tensor(dataset.splits[split], dataset.image_column, image_size, num_channels)
        features[split] = extract_features(encoder, pixels, image_mean, image_std, pooling, batch_size)
    results: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        if protocol == "finetune":
            results[protocol] = finetune_image_classifier(model_dir, dataset, finetune_settings, images=images)
            continue
        value, params = frozen_feature_protocol(protocol, features[train], labels[train], features[test],
                                                labels[test], num_classes, k=k, temperature=temperature,
                                                shots=shots, episodes=episodes)
        results[protocol] = {"protocol": protocol, "dataset": dataset.name, "split": test, "value": value,
                             "params": {**params, "pooling": pooling}}
    return results


def frozen_feature_protocol(
    protocol: str, train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
    test_labels: torch.Tensor, num_classes: int, k: int = 20, temperature: float | None = 0.07,
    shots: int = DEFAULT_SHOTS, episodes: int = DEFAULT_EPISODES,
) -> tuple[float, dict[str, Any]]:
    """Test accuracy of one frozen-feature protocol ("knn", "linear" or "few-shot") and the parameters it ran with."""
    if protocol == "knn":
        value = knn_accuracy(train_features, train_labels, test_features, test_labels, num_classes, k=k,
                             temperature=temperature)
        return float(value), {"k": k, "temperature": temperature}
    if protocol == "few-shot":
        result = few_shot(train_features, train_labels, test_features, test_labels, num_classes, shots=shots,
                          episodes=episodes)
        return float(result.accuracy), {"shots": shots, "episodes": episodes, "std": result.std,
                                        "episode_accuracies": result.episode_accuracies,
                                        "weight_decay": result.weight_decay}
    if protocol != "linear":
        raise HfSslError(f"unknown frozen-feature protocol '{protocol}' (available: {', '.join(FROZEN_PROTOCOLS)})")
    probe = linear_probe(train_features, train_labels, test_features, test_labels, num_classes)
    return float(probe.accuracy), {"weight_decay": probe.weight_decay}
