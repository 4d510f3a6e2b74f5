"""Evaluation of image-text models (CLIP, dual encoders) with their own text tower as the classifier.

- zero-shot classification (Radford et al. 2021, Sec. 3.1.4): each class is the mean of the L2-normalised text
  embeddings of prompt templates filled with its name (prompt ensembling, Sec. 3.1.4), re-normalised; an image is
  assigned the class of highest cosine similarity. Top-1 and top-5 accuracy.
- retrieval: image->text and text->image recall@K on aligned pairs (Sec. 3.1.5 / Table 13's Flickr30k protocol).

The models are the native transformers ones (`CLIPModel`, `VisionTextDualEncoderModel`), so this measures what
users get from the exported folder.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.captions import EVAL_TEMPLATES, prompt_name
from ..data.datasets import ImageDataset
from ..data.images import images_to_tensor, labels_to_tensor
from ..errors import HfSslError, first_line
from .features import extract_features
from .few_shot import DEFAULT_EPISODES, DEFAULT_SHOTS
from .image_protocols import frozen_feature_protocol


@torch.no_grad()
def image_embeddings(model: PreTrainedModel, images: torch.Tensor, image_mean: Sequence[float],
                     image_std: Sequence[float], batch_size: int = 256) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, D) L2-normalised image embeddings (after the projection)."""
    def embed(pixels: torch.Tensor) -> torch.Tensor:
        return model.get_image_features(pixel_values=pixels).pooler_output

    return F.normalize(extract_features(model, images, image_mean, image_std, batch_size=batch_size, embed=embed), dim=-1)


@torch.no_grad()
def text_embeddings(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                    batch_size: int = 256) -> torch.Tensor:
    """Texts -> (N, D) L2-normalised text embeddings; texts longer than the tower's positions are truncated."""
    model.eval()
    device = next(model.parameters()).device
    max_length = model.config.text_config.max_position_embeddings
    chunks = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                           max_length=max_length, return_tensors="pt").to(device)
        kwargs = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
        chunks.append(model.get_text_features(**kwargs).pooler_output.float().cpu())
    return F.normalize(torch.cat(chunks), dim=-1)


def zero_shot_weights(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, class_names: Sequence[str],
                      templates: Sequence[str] = EVAL_TEMPLATES) -> torch.Tensor:
    """(C, D): per class, the re-normalised mean of its prompts' embeddings."""
    prompts = [template.format(prompt_name(name)) for name in class_names for template in templates]
    embeds = text_embeddings(model, tokenizer, prompts).view(len(class_names), len(templates), -1)
    return F.normalize(embeds.mean(dim=1), dim=-1)


def load_image_text_model(folder: str | os.PathLike):
    """(model, processor) of an exported image-text folder as plain transformers loads them."""
    from transformers import AutoModel, AutoProcessor

    try:
        return AutoModel.from_pretrained(folder, use_safetensors=True), AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load the image-text model in {folder}: {first_line(e)}") from None


def top_k_accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Share of rows whose label is among the k highest scores."""
    k = min(k, scores.shape[1])
    return (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()


def zero_shot_accuracy(image_embeds: torch.Tensor, class_embeds: torch.Tensor, labels: torch.Tensor,
                       ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy of assigning each image the classes of highest cosine similarity between its embedding and the
    class embeddings (the zero-shot classifier built from prompts by :func:`zero_shot_weights`)."""
    scores = F.normalize(torch.as_tensor(image_embeds).float(), dim=-1) @ F.normalize(
        torch.as_tensor(class_embeds).float(), dim=-1).T
    labels = torch.as_tensor(labels).long()
    return {k: top_k_accuracy(scores, labels, k) for k in ks}


def retrieval_recall(image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_image: torch.Tensor,
                     ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Recall@K both ways. `text_image[j]` is the image caption j describes (several captions may share one).

    image->text: an image is a hit if any of its captions ranks in the top K texts; text->image: a caption is a
    hit if its image ranks in the top K images."""
    similarity = image_embeds @ text_embeds.T  # (N_images, N_texts)
    matches = text_image[None, :] == torch.arange(image_embeds.shape[0])[:, None]  # (N_images, N_texts)
    results = {}
    for k in ks:
        top_texts = similarity.topk(min(k, similarity.shape[1]), dim=1).indices
        results[f"image_to_text_recall@{k}"] = matches.gather(1, top_texts).any(dim=1).float().mean().item()
        top_images = similarity.T.topk(min(k, similarity.shape[0]), dim=1).indices
        results[f"text_to_image_recall@{k}"] = (top_images == text_image[:, None]).any(dim=1).float().mean().item()
    return results


def captions_of(dataset: ImageDataset, split: str) -> tuple[list[str], torch.Tensor]:
    """The split's captions, flattened, and for each the index of its image (a row may hold a list of captions)."""
    texts, owners = [], []
    for index, value in enumerate(dataset.splits[split][dataset.text_column]):
        for caption in [value] if isinstance(value, str) else value:
            texts.append(caption)
            owners.append(index)
    return texts, torch.tensor(owners)


IMAGE_TEXT_PROTOCOLS = ("zero-shot", "retrieval", "knn", "linear", "few-shot")


def applicable_protocols(dataset: ImageDataset) -> dict[str, str | None]:
    """protocol -> None if the dataset supports it, else why not."""
    labelled = dataset.label_column is not None and dataset.test_split is not None
    no_labels = f"{dataset.name} has no labelled test split"
    return {
        "zero-shot": None if labelled and dataset.class_names else f"{dataset.name} has no class names and test split",
        "retrieval": None if dataset.text_column and dataset.test_split else f"{dataset.name} has no captioned test split",
        "knn": None if labelled else no_labels,
        "linear": None if labelled else no_labels,
        "few-shot": None if labelled else no_labels,
    }


def evaluate_image_text_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dataset: ImageDataset, image_size: int,
    num_channels: int, image_mean: Sequence[float], image_std: Sequence[float], protocols: Sequence[str],
    templates: Sequence[str] = EVAL_TEMPLATES, k: int = 20, images: dict[str, torch.Tensor] | None = None,
    shots: int = DEFAULT_SHOTS, episodes: int = DEFAULT_EPISODES,
) -> dict[str, dict[str, Any]]:
    """`{protocol: {"protocol", "dataset", "split", "value", "params"}}`; zero-shot's value is top-1 accuracy (top-5 in
    params), retrieval's the mean of the four recalls (each in params). kNN / linear probe use the image embeddings."""
    reasons = applicable_protocols(dataset)
    for protocol in protocols:
        if protocol not in reasons:
            raise HfSslError(f"unknown protocol '{protocol}' for an image-text model (available: {', '.join(reasons)})")
        if reasons[protocol]:
            raise HfSslError(f"cannot evaluate {protocol}: {reasons[protocol]}")
    computed: dict[str, torch.Tensor] = {}

    def embeds(split: str) -> torch.Tensor:
        """The split's image embeddings, computed once (kNN and the linear probe share the train split's)."""
        if split not in computed:
            pixels = (images or {}).get(split)
            if pixels is None:
                pixels = images_to_tensor(dataset.splits[split], dataset.image_column, image_size, num_channels)
            computed[split] = image_embeddings(model, pixels, image_mean, image_std)
        return computed[split]

    train, test = dataset.train_split, dataset.test_split
    test_embeds = embeds(test)
    results: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        metric = "accuracy"
        if protocol == "zero-shot":
            weights = zero_shot_weights(model, tokenizer, dataset.class_names, templates)
            labels = labels_to_tensor(dataset.splits[test], dataset.label_column)
            top = zero_shot_accuracy(test_embeds, weights, labels, (1, 5))
            value = top[1]
            params = {"top5": top[5], "num_templates": len(templates),
                      "num_classes": len(dataset.class_names)}
        elif protocol == "retrieval":
            texts, owners = captions_of(dataset, test)
            params = retrieval_recall(test_embeds, text_embeddings(model, tokenizer, texts), owners)
            params["num_images"] = int(test_embeds.shape[0])
            value, metric = sum(v for name, v in params.items() if "recall" in name) / 4, "recall"
        else:
            train_labels = labels_to_tensor(dataset.splits[train], dataset.label_column)
            test_labels = labels_to_tensor(dataset.splits[test], dataset.label_column)
            train_embeds = embeds(train)
            num_classes = int(max(train_labels.max(), test_labels.max())) + 1
            value, params = frozen_feature_protocol(protocol, train_embeds, train_labels, test_embeds, test_labels,
                                                    num_classes, k=k, shots=shots, episodes=episodes)
            params["features"] = "image embeddings"
        results[protocol] = {"protocol": protocol, "dataset": dataset.name, "split": test, "value": float(value),
                             "params": params, "metric": metric}
    return results
