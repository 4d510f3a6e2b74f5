"""Images: the modality of the image SSL methods (MAE, SimCLR, DINO, ...). Trains on the pixels of a labelled or
unlabelled image dataset, exports an image processor, evaluates an exported encoder's frozen features (kNN, linear
probe, few-shot, pooled as the method was trained: `pooling_of`) and, on request, the encoder fine-tuned end to end;
computes its features for a whole dataset (`hf-ssl embed`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import datasets
import torch
from transformers import PretrainedConfig

from ..data.collators import UInt8ImageDataset
from ..data.datasets import ImageDataset, load_image_dataset
from ..data.images import ImageFileDataset, images_to_tensor, labels_to_tensor, stream_images
from ..evaluation.features import extract_features
from ..evaluation.image_protocols import FROZEN_PROTOCOLS, evaluate_image_encoder
from ..embeddings import EmbeddingBatch
from ..errors import HfSslError
from ..evaluation.online import OnlineImageKnn
from ..hub.export import image_processor_for
from ..hub.plots import (PROJECTION_PLOT, RECONSTRUCTION_PLOT, plot_embedding_projection, plot_reconstruction_grid,
                         reconstruction_rows, subsample)
from ..modeling.method_model import MethodModel
from ..hub.card import describe_backbone
from ..nn.backbone import is_token_backbone, load_encoder
from . import (DataSpec, EvaluationSpec, Modality, PreparedData, StartingPoint, is_image_classifier, read_run_info,
               register_modality)


def pooling_of(model_dir: str | os.PathLike, requested: str | None = None) -> str:
    """How to read one feature vector from an exported token backbone (ViT): `requested` (`--pooling`), else the
    pooling its method trained with (recorded in OUT), else "auto" (the mean of the patch tokens)."""
    return requested or read_run_info(model_dir).get("pooling") or "auto"


class ImageModality(Modality):
    name = "image"
    model_description = "an image encoder"
    protocols = (*FROZEN_PROTOCOLS, "finetune")
    default_protocols = ("knn", "linear")  # few-shot repeats probes, finetune trains: both on request only
    online_protocol = "knn"
    pipeline_tag = "image-feature-extraction"
    streams = True

    def load_dataset(self, data: DataSpec) -> ImageDataset:
        return load_image_dataset(data.dataset or self.default_dataset, data.data_dir, data.image_column,
                                  data.label_column, streaming=data.streaming)

    def recognizes(self, config: PretrainedConfig) -> bool:
        # an image config, but not a classifier (the image-classification modality evaluates those)
        return (hasattr(config, "num_channels") and getattr(config, "text_config", None) is None
                and not is_image_classifier(config))

    def resolve_protocols(self, requested: list[str] | None, dataset: ImageDataset, config) -> list[str]:
        labelled = dataset.label_column is not None and dataset.test_split is not None
        if requested is None:
            return list(self.default_protocols) if labelled and not dataset.streamed else []
        self.check_protocols(requested, config)
        if requested and dataset.streamed:
            raise HfSslError(f"cannot evaluate {', '.join(requested)} with --streaming (the protocols read whole "
                             "splits): evaluate OUT afterwards with `hf-ssl evaluate`, or use --eval_protocols none")
        if requested and not labelled:
            raise HfSslError(f"cannot evaluate {', '.join(requested)}: {dataset.name} has no labelled test split "
                             f"(labels: {dataset.label_column}, splits: {', '.join(dataset.splits)}); "
                             "use --eval_protocols none")
        return requested

    def prepare(self, config: PretrainedConfig, dataset: ImageDataset, start: StartingPoint,
                work_dir: str) -> PreparedData:
        """The train split's pixels at the model's size. Image files (an image folder, encoded images in Arrow,
        Parquet or WebDataset shards) are decoded when a batch is fetched, in DataLoader workers, so that memory and
        start-up time do not grow with the dataset; the built-ins' uint8 arrays are converted into memory at once,
        in vectorised chunks, which is faster for them (Fashion-MNIST: about a second)."""
        train = dataset.splits[dataset.train_split]
        processor = image_processor_for(config.image_size, config.image_mean, config.image_std)
        if dataset.streamed:  # shuffled from the run's --seed (set_seed has seeded torch with it)
            return PreparedData(train_dataset=stream_images(train, dataset.image_column, config.image_size,
                                                            config.num_channels, min_size=config.patch_size,
                                                            seed=torch.initial_seed()),
                                processor=processor, examples_stack=True)
        if isinstance(train.features[dataset.image_column], datasets.Image):
            return PreparedData(train_dataset=ImageFileDataset(train, dataset.image_column, config.image_size,
                                                               config.num_channels, min_size=config.patch_size),
                                processor=processor, examples_stack=True)
        images = images_to_tensor(train, dataset.image_column, config.image_size, config.num_channels,
                                  min_size=config.patch_size)
        return PreparedData(train_dataset=UInt8ImageDataset(images), processor=processor,
                            images={dataset.train_split: images}, examples_stack=True)

    def online_evaluation(self, config: PretrainedConfig, dataset: ImageDataset, prepared: PreparedData,
                          spec: EvaluationSpec) -> OnlineImageKnn:
        """kNN on a seeded subset: at most `ONLINE_BANK_IMAGES` train images (already decoded for training) as the
        bank, `ONLINE_QUERY_IMAGES` test images as the queries; the whole splits of a small dataset (digits)."""
        train, test = dataset.splits[dataset.train_split], dataset.splits[dataset.test_split]
        bank_rows = subsample(len(train), ONLINE_BANK_IMAGES, seed=0)
        query_rows = subsample(len(test), ONLINE_QUERY_IMAGES, seed=0)
        bank_labels = labels_to_tensor(train, dataset.label_column)[bank_rows]
        query_labels = labels_to_tensor(test, dataset.label_column)[query_rows]
        decoded = prepared.images.get(dataset.train_split)

        def pixels(rows: datasets.Dataset) -> torch.Tensor:
            return images_to_tensor(rows, dataset.image_column, config.image_size, config.num_channels)

        return OnlineImageKnn(
            bank_images=decoded[bank_rows] if decoded is not None else pixels(train.select(bank_rows.tolist())),
            bank_labels=bank_labels, query_images=pixels(test.select(query_rows.tolist())),
            query_labels=query_labels, num_classes=int(max(bank_labels.max(), query_labels.max())) + 1,
            image_mean=config.image_mean, image_std=config.image_std, k=spec.k, temperature=spec.temperature,
            description=f"kNN (k={spec.k}) of {len(query_rows):,} {dataset.test_split} images against "
                        f"{len(bank_rows):,} {dataset.train_split} images of {dataset.name}")

    def embeddings(self, model_dir: str | os.PathLike, data: DataSpec, splits: Sequence[str] | None,
                   pooling: str | None = None, batch_size: int = 256) -> tuple[int, Iterator[EmbeddingBatch]]:
        dataset = self.load_dataset(data)
        names = list(splits or dataset.splits)
        unknown = [name for name in names if name not in dataset.splits]
        if unknown:
            raise HfSslError(f"{dataset.name} has no split '{unknown[0]}' (splits: {', '.join(dataset.splits)})")
        encoder, processor = load_encoder(model_dir)  # before any image is decoded: a bad folder fails first
        size = processor.size.get("height") or processor.size.get("shortest_edge")
        pooling = pooling_of(model_dir, pooling)
        root = data.dataset.split(":", 1)[1] if (data.dataset or "").startswith("imagefolder:") else None

        def batches() -> Iterator[EmbeddingBatch]:
            for split in names:
                rows = dataset.splits[split]
                labels = (labels_to_tensor(rows, dataset.label_column).tolist() if dataset.label_column else
                          [None] * len(rows))
                for start in range(0, len(rows), EMBED_CHUNK):
                    chunk = rows.select(range(start, min(start + EMBED_CHUNK, len(rows))))
                    pixels = images_to_tensor(chunk, dataset.image_column, size, encoder.config.num_channels)
                    features = extract_features(encoder, pixels, processor.image_mean, processor.image_std, pooling,
                                                batch_size)
                    yield EmbeddingBatch(example_ids(chunk, dataset.image_column, split, start, root), split,
                                         labels[start : start + len(chunk)], features)

        return sum(len(dataset.splits[name]) for name in names), batches()

    def evaluate(self, model_dir: str | os.PathLike, spec: EvaluationSpec, dataset: ImageDataset | None = None,
                 images: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, Any]]:
        dataset = dataset or self.load_dataset(spec.data)
        encoder, processor = load_encoder(model_dir)
        return evaluate_image_encoder(
            encoder, dataset, processor.size.get("height") or processor.size.get("shortest_edge"),
            encoder.config.num_channels, processor.image_mean, processor.image_std, protocols=spec.protocols,
            pooling=pooling_of(model_dir, spec.pooling), k=spec.k, temperature=spec.temperature,
            batch_size=spec.batch_size, images=images, shots=spec.shots, episodes=spec.episodes, model_dir=model_dir,
            finetune_settings=spec.finetune, baselines=spec.baselines)

    def plots(self, model: MethodModel, config, dataset: ImageDataset, prepared: PreparedData,
              plots_dir: Path) -> None:
        if dataset.streamed:  # the plots draw a seeded subset of a split: not of a stream
            return
        encoder = model.exported_model()
        draw_image_plots(model, config, dataset, prepared, plots_dir, lambda images: extract_features(
            encoder, images, config.image_mean, config.image_std, pooling=model.feature_pooling))

    def card_fields(self, model: MethodModel, config, dataset: ImageDataset, start: StartingPoint) -> dict[str, Any]:
        encoder = model.exported_model()
        token_backbone = is_token_backbone(encoder.config)
        cls_pooling = model.feature_pooling == "cls"
        return dict(
            image_size=config.image_size, backbone_description=describe_backbone(encoder),
            feature_snippet=("[:, 0]  # the [CLS] token, as evaluated above" if cls_pooling else
                             "[:, 1:].mean(1)  # the features evaluated above") if token_backbone else "",
            usage_note=("`AutoModel` adds a randomly initialised `pooler` to ViT (the warning about it is expected): "
                        "use `last_hidden_state`, not `pooler_output`.") if token_backbone else "",
            pooling_description=("the [CLS] token" if cls_pooling else "mean of the patch tokens")
            if token_backbone else "global average pooling",
        )


EMBED_CHUNK = 1024  # images decoded at a time by `hf-ssl embed`


def example_ids(rows: datasets.Dataset, image_column: str, split: str, start: int, root: str | None) -> list[str]:
    """Each image's file path (relative to `root`, the image folder, when under it), or SPLIT/ROW for images that
    are not files (built-in arrays, bytes embedded in Parquet)."""
    paths = [None] * len(rows)
    if isinstance(rows.features[image_column], datasets.Image):
        files = rows.cast_column(image_column, datasets.Image(decode=False))[image_column]
        paths = [entry.get("path") if isinstance(entry, dict) else None for entry in files]
    ids = []
    for row, path in enumerate(paths, start):
        if path is None:
            ids.append(f"{split}/{row}")
        elif root is not None and os.path.abspath(path).startswith(os.path.abspath(root) + os.sep):
            ids.append(os.path.relpath(path, root))
        else:
            ids.append(path)
    return ids


# the online kNN's subset: about 5 s of ResNet-18 features at 32 px on this project's 2-core CPU per evaluation
ONLINE_BANK_IMAGES = 5000
ONLINE_QUERY_IMAGES = 1000
PLOT_POINTS = 2000  # test images in the embedding projection (a seeded random subset of larger test splits)
RECONSTRUCTION_IMAGES = 8  # columns of the reconstruction grid


def draw_image_plots(model: MethodModel, config, dataset: ImageDataset, prepared: PreparedData,
                     plots_dir: Path, features_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """The plots of an image model: the 2-D PCA projection of `features_of(test images)` coloured by label (with a
    labelled test split, the evaluation's condition), and, for models with a `preview` (MAE,
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
    rows = reconstruction_rows(model, images[:RECONSTRUCTION_IMAGES], config.image_mean, config.image_std)
    if rows is not None:  # the method has a preview (MAE, SimMIM)
        plot_reconstruction_grid(rows, plots_dir / RECONSTRUCTION_PLOT)


register_modality(ImageModality())
