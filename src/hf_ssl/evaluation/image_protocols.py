"""Evaluation of an image encoder on a labelled dataset: kNN, linear probe and few-shot on frozen features, and
end-to-end fine-tuning.

Features come from the train split (the kNN memory bank / the probes' training set) and the test split;
both are computed once and shared by every frozen-feature protocol asked for.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import torch
from transformers import PreTrainedModel

from ..data.datasets import ImageDataset
from ..data.images import images_to_tensor, labels_to_tensor
from ..errors import HfSslError
from ..nn.normalization import PixelNormalization, rescale_pixels
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
    baselines: bool = False,
) -> dict[str, dict[str, Any]]:
    """Returns `{protocol: {"protocol", "dataset", "split", "value", "params"}}` (value = accuracy in [0, 1]).

    `images` may hold splits already converted to uint8 tensors at this size (pretraining has the train
    split in memory), so they are not decoded twice. "finetune" trains a copy of the exported folder `model_dir`
    (the encoder as users load it), not `encoder`. With `baselines`, each frozen-feature protocol's entry also
    holds `"baselines": {name: value}`, the same protocol on `baseline_features` (raw pixels, a random-init twin):
    what the encoder's number means.
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
    features: dict[str, torch.Tensor] = {}
    baseline_sets: dict[str, dict[str, torch.Tensor]] = {}  # baseline -> split -> features
    twin = random_init_twin(encoder) if baselines and frozen else None  # one twin for both splits
    for split in (train, test) if frozen else ():
        feature_chunks, baseline_chunks = [], []
        for pixels in pixel_chunks(dataset, split, image_size, num_channels, (images or {}).get(split)):
            feature_chunks.append(extract_features(encoder, pixels, image_mean, image_std, pooling, batch_size))
            if baselines:
                baseline_chunks.append(baseline_features(encoder, pixels, image_mean, image_std, pooling, batch_size,
                                                         twin))
        features[split] = torch.cat(feature_chunks)
        for name in baseline_chunks[0] if baseline_chunks else ():
            baseline_sets.setdefault(name, {})[split] = torch.cat([chunk[name] for chunk in baseline_chunks])
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
        if baseline_sets:
            results[protocol]["baselines"] = {
                name: frozen_feature_protocol(protocol, sets[train], labels[train], sets[test], labels[test],
                                              num_classes, k=k, temperature=temperature, shots=shots,
                                              episodes=episodes)[0]
                for name, sets in baseline_sets.items()}
    return results


DECODE_CHUNK = 4096  # images of a split decoded at a time when they are not in memory: their features are kept


def pixel_chunks(dataset: ImageDataset, split: str, image_size: int, num_channels: int,
                 decoded: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """A split's images as uint8 tensors at the model's size, in order: `decoded` (already in memory) whole, else
    `DECODE_CHUNK` images at a time, so that evaluating a dataset of image files holds only its features."""
    if decoded is not None:
        yield decoded
        return
    rows = dataset.splits[split]
    for start in range(0, len(rows), DECODE_CHUNK):
        chunk = rows.select(range(start, min(start + DECODE_CHUNK, len(rows))))
        yield images_to_tensor(chunk, dataset.image_column, image_size, num_channels)


BASELINE_SEED = 0


def random_init_twin(encoder: PreTrainedModel) -> PreTrainedModel:
    """The encoder's architecture with transformers' default random initialisation, seeded (`BASELINE_SEED`: the
    same twin for every split and run); the global generator is left as it was."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(BASELINE_SEED)
    try:
        return type(encoder)(encoder.config)
    finally:
        torch.random.set_rng_state(generator_state)


@torch.no_grad()
def baseline_features(
    encoder: PreTrainedModel, images: torch.Tensor, image_mean: Sequence[float], image_std: Sequence[float],
    pooling: str = "auto", batch_size: int = 256, twin: PreTrainedModel | None = None,
) -> dict[str, torch.Tensor]:
    """The features the encoder's protocols are compared with: "raw pixels", the images as the encoder receives them
    (rescaled and normalised like the exported processor does) flattened into one vector each, and "random init",
    the features of `twin` (default: `random_init_twin(encoder)`), pooled like the encoder. A pretrained encoder is
    only worth its training where it beats both."""
    flat = PixelNormalization(image_mean, image_std)(rescale_pixels(images)).flatten(1)
    twin = twin if twin is not None else random_init_twin(encoder)
    random_init = extract_features(twin, images, image_mean, image_std, pooling, batch_size)
    return {"raw pixels": flat.float(), "random init": random_init}


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
