"""Images: the modality of the image SSL methods (MAE, SimCLR, DINO, ...). Trains on the pixels of a labelled or
unlabelled image dataset, exports an image processor, evaluates the encoder's frozen features (kNN, linear probe,
few-shot) and, on request, the exported encoder fine-tuned end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from transformers import PretrainedConfig, PreTrainedModel

from ...data.collators import UInt8ImageDataset
from ...data.datasets import ImageDataset, load_image_dataset
from ...data.images import images_to_tensor, labels_to_tensor
from ...evaluation.features import extract_features
from ...evaluation.image_protocols import evaluate_image_encoder
from ...errors import HfSslError
from ...hub.export import image_processor_for
from ...hub.plots import (PROJECTION_PLOT, RECONSTRUCTION_PLOT, plot_embedding_projection, plot_reconstruction_grid,
                          reconstruction_rows, subsample)
from ...hub.card import describe_backbone
from ...nn.backbone import is_token_backbone
from . import Modality, PreparedData, register_modality


class ImageModality(Modality):
    name = "image"
    protocols = ("knn", "linear", "few-shot", "finetune")
    default_protocols = ("knn", "linear")  # few-shot repeats probes, finetune trains: both on request only
    pipeline_tag = "image-feature-extraction"

    def load_dataset(self, args) -> ImageDataset:
        return load_image_dataset(args.dataset, args.data_dir, args.image_column, args.label_column)

    def resolve_protocols(self, requested: list[str] | None, dataset: ImageDataset) -> list[str]:
        labelled = dataset.label_column is not None and dataset.test_split is not None
        if requested is None:
            return list(self.default_protocols) if labelled else []
        if requested and not labelled:
            raise HfSslError(f"cannot evaluate {', '.join(requested)}: {dataset.name} has no labelled test split "
                             f"(labels: {dataset.label_column}, splits: {', '.join(dataset.splits)}); "
                             "use --eval_protocols none")
        return requested

    def prepare(self, config: PretrainedConfig, dataset: ImageDataset, args, work_dir: str) -> PreparedData:
        images = images_to_tensor(dataset.splits[dataset.train_split], dataset.image_column, config.image_size,
                                  config.num_channels, min_size=config.patch_size)
        return PreparedData(
            train_dataset=UInt8ImageDataset(images),
            processor=image_processor_for(config.image_size, config.image_mean, config.image_std),
            images={dataset.train_split: images},
        )

    def evaluate(self, model: PreTrainedModel, config, dataset: ImageDataset, prepared: PreparedData, args,
                 protocols: list[str]) -> dict[str, dict[str, Any]]:
        return evaluate_image_encoder(
            model.exported_encoder(), dataset, config.image_size, config.num_channels, config.image_mean,
            config.image_std, protocols=protocols, pooling=args.pooling, k=args.knn_k, images=prepared.images,
            model_dir=prepared.export_dir)

    def plots(self, model: PreTrainedModel, config, dataset: ImageDataset, prepared: PreparedData, args,
              plots_dir: Path) -> None:
        encoder = model.exported_encoder()
        draw_image_plots(model, config, dataset, prepared, plots_dir, lambda images: extract_features(
            encoder, images, config.image_mean, config.image_std, pooling=args.pooling))

    def card_fields(self, model: PreTrainedModel, config, dataset: ImageDataset, args) -> dict[str, Any]:
        encoder = model.exported_encoder()
        token_backbone = is_token_backbone(encoder.config)
        return dict(
            image_size=config.image_size, backbone_description=describe_backbone(encoder),
            feature_snippet="[:, 1:].mean(1)  # the features evaluated above" if token_backbone else "",
            usage_note=("`AutoModel` adds a randomly initialised `pooler` to ViT (the warning about it is expected): "
                        "use `last_hidden_state`, not `pooler_output`.") if token_backbone else "",
            pooling_description=("mean of the patch tokens" if args.pooling in ("auto", "mean") else "the [CLS] token")
            if getattr(config.backbone_config, "patch_size", None) else "global average pooling",
        )


PLOT_POINTS = 2000  # test images in the embedding projection (a seeded random subset of larger test splits)
RECONSTRUCTION_IMAGES = 8  # columns of the reconstruction grid


def draw_image_plots(model: PreTrainedModel, config, dataset: ImageDataset, prepared: PreparedData,
                     plots_dir: Path, features_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """The plots of an image model: the 2-D PCA projection of `features_of(test images)` coloured by label (with a
    labelled test split, the evaluation's condition), and, for models with the `masked_reconstruction` hook (MAE,
    SimMIM), a grid of masked test images (train images when there is no test split) and their reconstructions.
    Only the plotted images are decoded: a seeded subset of at most `PLOT_POINTS`."""
    split = dataset.test_split or dataset.train_split
    data = dataset.splits[split]
    rows = subsample(len(data), PLOT_POINTS, seed=0)
    shown = data.select(rows.tolist())
    cached = prepared.images.get(split)
    images = cached[rows] if cached is not None else images_to_tensor(
        shown, dataset.image_column, config.image_size, config.num_channels)
    if dataset.test_split is not None and dataset.label_column is not None:
        labels = labels_to_tensor(shown, dataset.label_column)
        plot_embedding_projection(features_of(images), labels, dataset.class_names, plots_dir / PROJECTION_PLOT,
                                  max_points=PLOT_POINTS, title=f"{dataset.name} {split} embeddings, PCA")
    if hasattr(model, "masked_reconstruction"):
        grid = reconstruction_rows(model, images[:RECONSTRUCTION_IMAGES], config.image_mean, config.image_std)
        plot_reconstruction_grid(grid, plots_dir / RECONSTRUCTION_PLOT)


register_modality(ImageModality())
