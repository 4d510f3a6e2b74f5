"""Fine-tuning evaluation: the exported encoder trained end to end as a classifier, scored on the test split.

This is the protocol downstream users run themselves, with plain transformers: the folder is loaded with
``AutoModelForImageClassification`` (image encoders) or ``AutoModelForSequenceClassification`` (text encoders,
e.g. an mlm export), a freshly initialised classification head is added, and the whole model is trained with the
real :class:`transformers.Trainer`: AdamW, linear warmup then cosine decay, weight decay, a few epochs (the
end-to-end fine-tuning protocol of SimCLR / MAE, He et al. 2022, Appendix A.1, in short). Images get a random
horizontal flip, drawn per image but applied to the whole batch at once in the collator.

The two kinds differ only in the Auto class and the collator; everything else is one code path
(:func:`finetune_classifier`). Trainer's ``output_dir`` is a temporary folder that is removed afterwards, so
nothing is written into the evaluated folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import datasets
import torch
from torch.utils.data import Dataset

from ..data.datasets import ImageDataset
from ..data.images import images_to_tensor, labels_to_tensor
from ..nn.normalization import PixelNormalization, rescale_pixels
from ..errors import HfSslError, first_line

__all__ = [
    "FinetuneSettings", "finetune_classifier", "finetune_image_classifier", "finetune_text_classifier",
    "ImageClassificationCollator",
]


@dataclass
class FinetuneSettings:
    """The fine-tuning recipe. AdamW with decoupled weight decay 0.05 and warmup + cosine follow MAE's fine-tuning
    recipe (He et al. 2022, Table 9); the peak learning rate is that of its batch-size scaling rule at batch 64
    (1e-3 * 64 / 256 ~ 2.5e-4), doubled because a few epochs leave the head little time."""

    epochs: float = 3.0
    learning_rate: float = 5e-4
    batch_size: int = 64
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1  # of all optimisation steps
    horizontal_flip: bool = True  # images only
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and self.learning_rate > 0 and self.batch_size >= 1 and self.weight_decay >= 0
                and 0 <= self.warmup_fraction < 1):
            raise HfSslError(f"invalid fine-tuning settings: epochs {self.epochs} and learning rate "
                             f"{self.learning_rate} must be positive, batch size {self.batch_size} at least 1, weight "
                             f"decay {self.weight_decay} non-negative, warmup fraction {self.warmup_fraction} in [0, 1)")


class _ClassificationDataset(Dataset):
    """(input tensor, label) rows for Trainer: images as uint8 (N, C, H, W), normalised in the collator."""

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor):
        self.pixels, self.labels = pixels, labels

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixels[index], "labels": self.labels[index]}


class ImageClassificationCollator:
    """uint8 images -> normalised float pixels as the exported image processor prepares them (rescale to [0, 1],
    then mean/std), with a random horizontal flip of each image while ``augment`` is set."""

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float], horizontal_flip: bool = True,
                 seed: int = 0):
        self.normalize = PixelNormalization(image_mean, image_std)
        self.horizontal_flip = horizontal_flip
        self.augment = True
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        pixels = rescale_pixels(torch.stack([row["pixel_values"] for row in rows]))
        if self.augment and self.horizontal_flip:
            flip = torch.rand(pixels.shape[0], generator=self.generator) < 0.5
            pixels = torch.where(flip.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
        return {"pixel_values": self.normalize(pixels),
                "labels": torch.stack([torch.as_tensor(row["labels"]) for row in rows]).long()}


def finetune_classifier(
    auto_class: type, model_dir: str | os.PathLike, num_labels: int, train_dataset: Dataset, test_dataset: Dataset,
    collator: Callable, settings: FinetuneSettings, class_names: Sequence[str] | None = None,
    save_to: str | os.PathLike | None = None, save_processor: Any = None,
) -> dict[str, Any]:
    """Load ``model_dir`` with ``auto_class`` and ``num_labels`` outputs, train it end to end with Trainer, and return
    ``{"accuracy", "train_loss", "steps"}`` on ``test_dataset``. With ``save_to``, the fine-tuned classifier (and
    ``save_processor``) are saved there. ``collator`` may have an ``augment`` flag: it is cleared before testing."""
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    labels = list(class_names) if class_names and len(class_names) == num_labels else [str(i) for i in range(num_labels)]
    set_seed(settings.seed)  # the new head's initialisation
    try:
        model = auto_class.from_pretrained(
            str(model_dir), num_labels=num_labels, id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)}, ignore_mismatched_sizes=True, use_safetensors=True)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load {model_dir} as {auto_class.__name__}: {first_line(e)}") from None
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="hf-ssl-finetune-") as work_dir:
        args = TrainingArguments(
            output_dir=work_dir, num_train_epochs=settings.epochs, learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay, warmup_steps=settings.warmup_fraction, lr_scheduler_type="cosine",
            per_device_train_batch_size=settings.batch_size, per_device_eval_batch_size=max(256, settings.batch_size),
            save_strategy="no", logging_strategy="no", report_to="none", seed=settings.seed, use_cpu=not cuda,
            bf16=cuda and torch.cuda.is_bf16_supported(), remove_unused_columns=False, disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=train_dataset, data_collator=collator)
        trainer.remove_callback(PrinterCallback)
        # Trainer reports on stdout; `hf-ssl evaluate` prints its JSON there.
        with contextlib.redirect_stdout(sys.stderr):
            train_output = trainer.train()
            if hasattr(collator, "augment"):
                collator.augment = False
            prediction = trainer.predict(test_dataset)
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    accuracy = float((torch.as_tensor(logits).argmax(-1) == torch.as_tensor(prediction.label_ids)).double().mean())
    if save_to is not None:
        trainer.model.save_pretrained(str(save_to))
        if save_processor is not None:
            save_processor.save_pretrained(str(save_to))
    return {"accuracy": accuracy, "train_loss": float(train_output.training_loss),
            "steps": int(train_output.global_step)}


def _entry(dataset: str, split: str, value: float, settings: FinetuneSettings, images: bool,
           **params: Any) -> dict[str, Any]:
    recipe = {k: v for k, v in asdict(settings).items() if k != "seed" and (images or k != "horizontal_flip")}
    return {"protocol": "finetune", "dataset": dataset, "split": split, "value": value, "metric": "accuracy",
            "params": {**recipe, **params}}


def finetune_image_classifier(
    model_dir: str | os.PathLike, dataset: ImageDataset, settings: FinetuneSettings | None = None,
    images: dict[str, torch.Tensor] | None = None, save_to: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The fine-tune protocol for an image-encoder folder (`AutoModelForImageClassification`) on a labelled image
    dataset; returns its result entry. `images` may hold splits already decoded at the processor's size."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    settings = settings or FinetuneSettings()
    if dataset.label_column is None or dataset.test_split is None:
        raise HfSslError(f"cannot fine-tune on {dataset.name}: it has no labels and test split "
                         f"(labels: {dataset.label_column}, splits: {', '.join(dataset.splits)})")
    try:
        config = AutoConfig.from_pretrained(str(model_dir))
        processor = AutoImageProcessor.from_pretrained(str(model_dir))
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load an image model from {model_dir}: {first_line(e)}") from None
    size = processor.size.get("height") or processor.size.get("shortest_edge")
    channels = getattr(config, "num_channels", 3)
    splits = {}
    for split in (dataset.train_split, dataset.test_split):
        pixels = (images or {}).get(split)
        if pixels is None:
            pixels = images_to_tensor(dataset.splits[split], dataset.image_column, size, channels)
        splits[split] = _ClassificationDataset(pixels, labels_to_tensor(dataset.splits[split], dataset.label_column))
    num_labels = _num_labels(dataset.class_names, [splits[s].labels for s in splits])
    collator = ImageClassificationCollator(processor.image_mean, processor.image_std, settings.horizontal_flip,
                                           settings.seed)
    result = finetune_classifier(AutoModelForImageClassification, model_dir, num_labels, splits[dataset.train_split],
                                 splits[dataset.test_split], collator, settings, dataset.class_names, save_to,
                                 processor)
    return _entry(dataset.name, dataset.test_split, result["accuracy"], settings, True, steps=result["steps"],
                  train_loss=result["train_loss"])


def finetune_text_classifier(
    model_dir: str | os.PathLike, corpus: datasets.DatasetDict, dataset_name: str,
    settings: FinetuneSettings | None = None, save_to: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The fine-tune protocol for a text-encoder folder (`AutoModelForSequenceClassification`) on a corpus with
    `train`/`test` splits holding `text` and integer `label` columns (what `load_text_corpus` returns)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, DataCollatorWithPadding

    from ..data.tokenizers import load_tokenizer
    from .language_modeling import evaluation_block_length

    settings = settings or FinetuneSettings()
    if "label" not in corpus["train"].column_names:
        raise HfSslError(f"cannot fine-tune on {dataset_name}: it has no 'label' column "
                         f"(columns: {', '.join(corpus['train'].column_names)})")
    tokenizer = load_tokenizer(str(model_dir))
    try:
        config = AutoConfig.from_pretrained(str(model_dir))
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load a text model from {model_dir}: {first_line(e)}") from None
    max_length = evaluation_block_length(tokenizer, config)

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    splits = {}
    for split in ("train", "test"):
        labels = labels_to_tensor(corpus[split], "label")
        tokenized = corpus[split].map(tokenize, batched=True, remove_columns=corpus[split].column_names)
        splits[split] = tokenized.add_column("labels", labels.tolist())
    feature = corpus["train"].features["label"]
    class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    num_labels = _num_labels(class_names, [torch.tensor(splits[s]["labels"]) for s in splits])
    result = finetune_classifier(AutoModelForSequenceClassification, model_dir, num_labels, splits["train"],
                                 splits["test"], DataCollatorWithPadding(tokenizer), settings, class_names, save_to,
                                 tokenizer)
    return _entry(dataset_name, "test", result["accuracy"], settings, False, steps=result["steps"],
                  train_loss=result["train_loss"], max_length=max_length)


def _num_labels(class_names: Sequence[str] | None, labels: Sequence[torch.Tensor]) -> int:
    largest = int(max(int(split.max()) for split in labels if split.numel())) + 1
    return max(len(class_names), largest) if class_names else largest
