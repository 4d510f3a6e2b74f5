"""Image classification from a few labels: the modality of the semi-supervised methods (supervised baseline,
Pseudo-Label, entropy minimisation, Mean Teacher, FixMatch, self-training, data distillation, Noisy Student).

Training data: the training split of a labelled image dataset, of which a seeded, stratified subset keeps its labels
(`--labels_per_class K` or `--labeled_fraction F`; a partly empty label column as it is) and every other example is
unlabelled. The chosen ids are written to `work_dir/labeled_subset.json` (a resumed run checks it draws the same) and
recorded in OUT (`ssl/training_info.json`). The labels of the unlabelled examples are *hidden*: the training dataset
holds -1 for them, and only `PseudoLabelMonitorCallback` holds their true values, to log how accurate the
pseudo-labels are and how many are used.

Export: the trained classifier in its native `*ForImageClassification` class with the dataset's class names as
`id2label`, and its image processor: `pipeline("image-classification", model=OUT)` works with plain transformers.
Evaluation: top-1 accuracy on the test split, overall and per class; on request, the image encoders' frozen-feature
protocols (kNN, linear probe, few-shot) on the classifier's backbone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import extract_model_from_parallel
from transformers import PretrainedConfig, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..data.datasets import ImageDataset, load_image_dataset
from ..data.images import images_to_tensor
from ..data.labeled_subset import labels_with_missing, read_labeled_subset, select_labeled_subset, write_labeled_subset
from ..data.semi_supervised import hide_labels
from ..errors import HfSslError, first_line
from ..evaluation.features import extract_features
from ..evaluation.image_protocols import FROZEN_PROTOCOLS, evaluate_image_encoder
from ..hub.card import describe_backbone
from ..hub.export import image_processor_for
from ..modeling.method_model import MethodModel
from ..nn.backbone_presets import require_safetensors
from . import (DataSpec, EvaluationSpec, Modality, PreparedData, StartingPoint, is_image_classifier, read_run_info,
               register_modality)
from .image import draw_image_plots, pooling_of

LABELED_SUBSET_FILE = "labeled_subset.json"  # in the run's work dir (OUT/checkpoints): the ids a resumed run must reuse


class PseudoLabelMonitorCallback(TrainerCallback):
    """Logs how good the pseudo-labels are, from the hidden labels the training code never reads.

    `hidden_labels` (U,): the true class of each unlabelled example, by its position in the unlabelled set (what the
    batches' `unlabeled_index` holds), -1 where the dataset itself has no label. After every optimizer step it reads
    the model's `last_pseudo_labels` (from the step's last micro-batch; None for methods that do not pseudo-label)
    and counts; every logging step it adds to the logs:
    - `pseudo_label_coverage`: the share of the unlabelled images seen that were used (weight > 0);
    - `pseudo_label_accuracy`: the share of the used pseudo-labels that equal the hidden label (images whose label
      is truly unknown are left out).
    Both over the steps since the previous log. This object is the only place the hidden labels live.
    """

    def __init__(self, hidden_labels: torch.Tensor):
        self._hidden = hidden_labels.detach().to("cpu", torch.long).clone()
        self._reset()

    def _reset(self) -> None:
        self._seen = self._used = self._judged = self._correct = 0

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: torch.nn.Module | None = None, **kwargs) -> None:
        if model is None:
            return
        pseudo = extract_model_from_parallel(model).last_pseudo_labels
        if pseudo is None:
            return
        index = pseudo.unlabeled_index.detach().cpu().long()
        labels = pseudo.labels.detach().cpu().long()
        used = pseudo.weights.detach().cpu() > 0
        truth = self._hidden[index]
        judged = used & (truth >= 0)
        self._seen += index.numel()
        self._used += int(used.sum())
        self._judged += int(judged.sum())
        self._correct += int((labels[judged] == truth[judged]).sum())

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs) -> None:
        if logs is None or "loss" not in logs or self._seen == 0:
            return
        values = {"pseudo_label_coverage": self._used / self._seen}
        if self._judged:
            values["pseudo_label_accuracy"] = self._correct / self._judged
        logs.update(values)
        last = state.log_history[-1] if state.log_history else {}
        if last.get("step") == state.global_step and "loss" in last:  # Trainer appended a copy before on_log
            last.update(values)
        self._reset()


def class_names_of(dataset: ImageDataset, labels: torch.Tensor | None = None) -> list[str]:
    """The dataset's class names (its `ClassLabel`), or "0", "1", ... for integer labels without names."""
    if dataset.class_names:
        return list(dataset.class_names)
    if labels is None:
        labels = labels_with_missing(dataset.splits[dataset.train_split], dataset.label_column)
    return [str(i) for i in range(int(labels.max()) + 1)]


def load_classifier(folder: str | os.PathLike):
    """An exported classifier folder (or Hub id) -> (native `*ForImageClassification` model, image processor), as
    plain transformers loads them."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    folder = str(folder)
    if os.path.isdir(folder):
        require_safetensors(folder)
    try:
        model = AutoModelForImageClassification.from_pretrained(folder, use_safetensors=True)
        processor = AutoImageProcessor.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load an image classifier from {folder}: {first_line(e)}") from None
    return model, processor


def predict(model: torch.nn.Module, images: torch.Tensor, image_mean, image_std, batch_size: int = 256) -> torch.Tensor:
    """(N, C, H, W) uint8 images -> (N,) predicted class ids, normalised exactly as the exported processor does (the
    batching, normalisation and autocast of the feature extraction, with the logits as the features)."""
    logits = extract_features(model, images, image_mean, image_std, batch_size=batch_size,
                              embed=lambda pixels: model(pixel_values=pixels).logits)
    return logits.argmax(dim=-1)


def model_to_dataset_classes(id2label: dict[int, str], class_names: list[str]) -> torch.Tensor:
    """For each of the model's outputs, the dataset's class id with the same name (-1: a class the dataset has not).
    A model whose labels are transformers' placeholders (LABEL_0, ...) is matched by position when the counts agree."""
    model_names = [id2label[i] for i in range(len(id2label))]
    if set(class_names) <= set(model_names):
        return torch.tensor([class_names.index(n) if n in class_names else -1 for n in model_names])
    if model_names == [f"LABEL_{i}" for i in range(len(model_names))] and len(model_names) == len(class_names):
        return torch.arange(len(class_names))
    unknown = [n for n in class_names if n not in model_names]
    raise HfSslError(f"the classifier's labels ({', '.join(model_names[:5])}{', ...' if len(model_names) > 5 else ''}) "
                     f"do not include the dataset's class {unknown[0]!r}: evaluate it on the data it was trained for")


class ImageClassificationModality(Modality):
    name = "image-classification"
    model_description = "an image classifier"
    # top-1 accuracy of the classifier; on request also the frozen-feature protocols of image encoders on its
    # backbone (kNN, linear probe, few-shot: how good the representation the labels shaped is)
    protocols = ("accuracy", *FROZEN_PROTOCOLS)
    default_protocols = ("accuracy",)
    card_template = "classifier.md.j2"
    pipeline_tag = "image-classification"
    task_type = "image-classification"

    def load_dataset(self, data: DataSpec) -> ImageDataset:
        dataset = load_image_dataset(data.dataset or self.default_dataset, data.data_dir, data.image_column,
                                     data.label_column)
        if dataset.label_column is None:
            raise HfSslError(f"dataset {dataset.name} has no label column (columns: "
                             f"{', '.join(dataset.splits[dataset.train_split].features)}): a classifier needs labels; "
                             "name the column with --label_column")
        return dataset

    def recognizes(self, config: PretrainedConfig) -> bool:
        return is_image_classifier(config)

    def resolve_protocols(self, requested: list[str] | None, dataset: ImageDataset, config) -> list[str]:
        protocols = list(self.default_protocols) if requested is None else requested
        self.check_protocols(protocols, config)
        if protocols and dataset.test_split is None:
            raise HfSslError(f"cannot evaluate {', '.join(protocols)}: {dataset.name} has no test split (splits: "
                             f"{', '.join(dataset.splits)}); use --eval_protocols none")
        return protocols

    # --- pretraining -----------------------------------------------------------------------------------------

    def prepare(self, config: PretrainedConfig, dataset: ImageDataset, start: StartingPoint,
                work_dir: str) -> PreparedData:
        train = dataset.splits[dataset.train_split]
        labels = labels_with_missing(train, dataset.label_column)
        names = class_names_of(dataset, labels)
        if int(labels.max()) >= len(names):
            raise HfSslError(f"label {int(labels.max())} of {dataset.name} is out of range for its "
                             f"{len(names)} classes")
        settings = dict(labels_per_class=config.labels_per_class, labeled_fraction=config.labeled_fraction,
                        subset_seed=config.subset_seed)
        ids = select_labeled_subset(labels, config.labels_per_class, config.labeled_fraction, config.subset_seed,
                                    num_classes=len(names))
        # data-dependent config fields, set before the model is built: its classifier gets the dataset's labels
        config.id2label = dict(enumerate(names))
        config.label2id = {name: i for i, name in enumerate(names)}

        images = images_to_tensor(train, dataset.image_column, config.image_size, config.num_channels,
                                  min_size=config.patch_size)
        # the hidden labels (by position in the unlabelled set) go to the monitor only, never to the training data
        train_dataset, hidden = hide_labels(images, labels, ids, config.unlabeled_ratio)
        config.num_unlabeled = train_dataset.num_unlabeled
        if config.unlabeled_ratio > 0 and train_dataset.num_unlabeled == 0:
            print(f"Every one of the {len(ids)} training images keeps its label: no unlabelled data to learn from "
                  "(choose the labelled subset with --labels_per_class K or --labeled_fraction F).")
        # written last, once the data is known to be usable: a resumed run checks it draws the same subset
        self._check_or_write_subset(Path(work_dir) / LABELED_SUBSET_FILE, ids, settings)
        counts = torch.bincount(labels[ids], minlength=len(names))
        record = dict(
            num_train_images=len(labels), num_labeled=len(ids), num_unlabeled=train_dataset.num_unlabeled,
            num_used_unlabeled=train_dataset.num_unlabeled if train_dataset.uses_unlabeled else 0,
            labeled_per_class={name: int(n) for name, n in zip(names, counts)},
            class_names=names, labeled_example_ids=ids.tolist(), **settings,
        )
        return PreparedData(
            train_dataset=train_dataset,
            processor=image_processor_for(config.image_size, config.image_mean, config.image_std),
            images={dataset.train_split: images},
            callbacks=[PseudoLabelMonitorCallback(hidden)],
            record=record,
        )

    @staticmethod
    def _check_or_write_subset(path: Path, ids: torch.Tensor, settings: dict[str, Any]) -> None:
        """A resumed run (its work dir holds the record) must train on the same labelled subset."""
        saved = read_labeled_subset(path)
        if saved is None:
            write_labeled_subset(path, ids, settings)
            return
        saved_ids, saved_settings = saved
        if saved_settings != settings or not torch.equal(saved_ids, ids):
            raise HfSslError(f"{path.parent} was trained on another labelled subset ({saved_settings}, "
                             f"{saved_ids.numel()} ids) than this run draws ({settings}, {ids.numel()} ids): resuming "
                             "would change the labels under the checkpoint; use another --output_dir")

    def verify_export(self, out_dir: Path, config: PretrainedConfig, dataset: ImageDataset) -> None:
        exported = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
        id2label = {int(k): v for k, v in (exported.get("id2label") or {}).items()}
        names = [id2label.get(i) for i in range(len(id2label))]
        expected = [config.id2label[i] for i in range(len(config.id2label))]
        if names != expected or not any(a.endswith("ForImageClassification") for a in exported.get("architectures", [])):
            raise RuntimeError(f"{out_dir}/config.json is not a classifier with the dataset's labels "
                               f"(architectures {exported.get('architectures')}, id2label {names[:5]}...)")

    def plots(self, model: MethodModel, config, dataset: ImageDataset, prepared: PreparedData,
              plots_dir: Path) -> None:
        """The PCA of the classifier's penultimate features (its backbone's pooled output) on test images."""
        encoder = model.exported_model().base_model
        draw_image_plots(model, config, dataset, prepared, plots_dir, lambda images: extract_features(
            encoder, images, config.image_mean, config.image_std, pooling=model.feature_pooling))

    def card_fields(self, model: MethodModel, config, dataset: ImageDataset, start: StartingPoint) -> dict[str, Any]:
        classifier = model.exported_model()
        return dict(image_size=config.image_size, backbone_description=describe_backbone(classifier.base_model),
                    num_classes=len(config.id2label))

    # --- evaluation of an exported folder --------------------------------------------------------------------

    def evaluate(self, model_dir: str | os.PathLike, spec: EvaluationSpec, dataset: ImageDataset | None = None,
                 images: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, Any]]:
        self.check_protocols(spec.protocols)
        dataset = dataset or self.load_dataset(spec.data)
        if dataset.test_split is None:
            raise HfSslError(f"dataset {dataset.name} has no test split to evaluate on (splits: "
                             f"{', '.join(dataset.splits)})")
        model, processor = load_classifier(model_dir)
        if torch.cuda.is_available():
            model = model.to("cuda")
        size = processor.size.get("height") or processor.size.get("shortest_edge")
        results: dict[str, dict[str, Any]] = {}
        if "accuracy" in spec.protocols:
            results["accuracy"] = self._accuracy(model, processor, size, dataset, spec, images, model_dir)
        frozen = tuple(p for p in spec.protocols if p in FROZEN_PROTOCOLS)
        if frozen:  # the classifier's backbone as a frozen encoder, pooled as it was trained
            results.update(evaluate_image_encoder(
                model.base_model, dataset, size, model.config.num_channels, processor.image_mean, processor.image_std,
                protocols=frozen, pooling=pooling_of(model_dir, spec.pooling), k=spec.k, temperature=spec.temperature,
                batch_size=spec.batch_size, images=images, shots=spec.shots, episodes=spec.episodes,
                model_dir=model_dir))
        return results

    @staticmethod
    def _accuracy(model, processor, size: int, dataset: ImageDataset, spec: EvaluationSpec,
                  images: dict[str, torch.Tensor] | None, model_dir: str | os.PathLike) -> dict[str, Any]:
        """Top-1 accuracy on the test split, overall and per class (classes matched by name)."""
        test = dataset.splits[dataset.test_split]
        labels = labels_with_missing(test, dataset.label_column)
        pixels = (images or {}).get(dataset.test_split)
        if pixels is None:
            pixels = images_to_tensor(test, dataset.image_column, size, model.config.num_channels)
        known = labels >= 0
        if not bool(known.any()):
            raise HfSslError(f"the {dataset.test_split} split of {dataset.name} has no labels to evaluate on")
        names = class_names_of(dataset)
        to_dataset = model_to_dataset_classes(model.config.id2label, names)
        predicted = to_dataset[predict(model, pixels[known], processor.image_mean, processor.image_std,
                                       spec.batch_size)]
        truth = labels[known]
        correct = predicted == truth
        per_class = {names[c]: float(correct[truth == c].float().mean()) for c in range(len(names))
                     if bool((truth == c).any())}
        run = read_run_info(model_dir)
        num_labeled = run.get("num_labeled")
        labels_used = f"{num_labeled} labels" if num_labeled is not None else "labels used unknown"
        if run.get("labels_per_class"):
            labels_used += f", {run['labels_per_class']} per class"
        return dict(
            protocol="accuracy", dataset=dataset.name, split=dataset.test_split, value=float(correct.float().mean()),
            params=dict(per_class=per_class, num_labeled=num_labeled, labels_per_class=run.get("labels_per_class"),
                        labels_used=labels_used, num_test_images=int(truth.numel())),
        )


register_modality(ImageClassificationModality())
