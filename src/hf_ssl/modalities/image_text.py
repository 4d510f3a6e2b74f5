"""Image-text pairs: the modality of CLIP. Trains on images with their captions (a caption column, or prompt
templates filled with the class name for labelled images), exports a CLIP processor (image processor + the
tokenizer trained on the captions or given), evaluates zero-shot classification, retrieval, and the image
embeddings under kNN / linear probe."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPImageProcessor, CLIPProcessor, PreTrainedTokenizerBase, VisionTextDualEncoderProcessor

from ..data.captions import EVAL_TEMPLATES, TRAIN_TEMPLATES, prompt_name, template_captions
from ..data.collators import ImageCaptionDataset
from ..data.datasets import ImageDataset, load_image_dataset
from ..data.images import images_to_tensor
from ..data.tokenizers import load_tokenizer, train_clip_bpe, trained_or_cached_tokenizer
from ..errors import HfSslError
from ..evaluation.image_text import (IMAGE_TEXT_PROTOCOLS, applicable_protocols, evaluate_image_text_model,
                                     image_embeddings, load_image_text_model)
from ..hub.card import describe_backbone
from ..nn.backbone_presets import is_checkpoint_spec
from . import DataSpec, EvaluationSpec, Modality, PreparedData, StartingPoint, register_modality
from .image import draw_image_plots


PIPELINE_TEMPLATE = "This is a photo of {}."  # the zero-shot pipeline's default hypothesis_template


class ImageTextModality(Modality):
    name = "image-text"
    model_description = "an image-text model"
    protocols = IMAGE_TEXT_PROTOCOLS
    default_protocols = ("zero-shot", "retrieval", "knn")
    card_template = "image_text.md.j2"
    pipeline_tag = "zero-shot-image-classification"
    task_type = "zero-shot-image-classification"

    def load_dataset(self, data: DataSpec) -> ImageDataset:
        dataset = load_image_dataset(data.dataset or self.default_dataset, data.data_dir, data.image_column,
                                     data.label_column, data.text_column)
        if dataset.text_column is None and not dataset.class_names:
            raise HfSslError(f"dataset {dataset.name} has neither captions (a text/caption column; name it with "
                             "--text_column) nor class names to build captions from")
        return dataset

    def recognizes(self, config) -> bool:
        return getattr(config, "vision_config", None) is not None and getattr(config, "text_config", None) is not None

    def resolve_protocols(self, requested: list[str] | None, dataset: ImageDataset, config) -> list[str]:
        reasons = applicable_protocols(dataset)
        if requested is None:
            return [p for p in self.default_protocols if reasons[p] is None]
        self.check_protocols(requested, config)
        for protocol in requested:
            if reasons.get(protocol):
                raise HfSslError(f"cannot evaluate {protocol}: {reasons[protocol]}")
        return requested

    def prepare(self, config, dataset: ImageDataset, start: StartingPoint, work_dir: str) -> PreparedData:
        train = dataset.splits[dataset.train_split]
        if dataset.text_column is not None:
            captions = [[c] if isinstance(c, str) else list(c) for c in train[dataset.text_column]]
            if not all(captions):
                raise HfSslError(f"some images of {dataset.name} have an empty list of captions")
        else:  # labels only: every image gets its class's templated captions, one drawn per visit
            per_class = template_captions(dataset.class_names, TRAIN_TEMPLATES)
            captions = [per_class[label] for label in train[dataset.label_column]]
        unique = sorted({c for options in captions for c in options})
        tokenizer = self._tokenizer(config, start, work_dir, unique)
        self._fit_text_config(config, tokenizer)
        self._check_prompt_lengths(config, tokenizer, dataset)
        max_length = config.text_config.max_position_embeddings
        ids = tokenizer(unique, truncation=True, max_length=max_length)["input_ids"]

        row = {caption: i for i, caption in enumerate(unique)}
        images = images_to_tensor(train, dataset.image_column, config.image_size, config.num_channels,
                                  min_size=config.patch_size)
        return PreparedData(
            train_dataset=ImageCaptionDataset(images, [torch.tensor(i) for i in ids],
                                              [[row[c] for c in options] for options in captions]),
            processor=self._processor(config, tokenizer),
            images={dataset.train_split: images},
        )

    def _tokenizer(self, config, start: StartingPoint, work_dir: str, captions: list[str]) -> PreTrainedTokenizerBase:
        """Given (--tokenizer), the chosen text tower's or continued checkpoint's own, or trained on the captions."""
        if start.tokenizer:
            return load_tokenizer(start.tokenizer)
        if config.text_backbone and is_checkpoint_spec(config.text_backbone):
            return load_tokenizer(config.text_backbone)
        if start.checkpoint:
            return load_tokenizer(start.checkpoint)
        tokenizer, trained = trained_or_cached_tokenizer(
            work_dir, lambda: train_clip_bpe(captions, config.tokenizer_vocab_size))
        if trained:
            print(f"Trained a {len(tokenizer)}-token BPE tokenizer on {len(captions)} distinct captions")
        return tokenizer

    @staticmethod
    def _fit_text_config(config, tokenizer: PreTrainedTokenizerBase) -> None:
        """Make the text tower agree with the tokenizer. The silent failures this prevents: a CLIP text tower pools
        at the first `eos_token_id`, so a different id than the tokenizer's makes every text embedding the same;
        ids beyond the embedding table crash only on the captions that contain them."""
        text = config.text_config
        tokenizer.model_max_length = text.max_position_embeddings
        if text.model_type == "clip_text_model":
            if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
                raise HfSslError("a CLIP text tower needs a tokenizer with an end-of-text (eos) and a pad token")
            text.vocab_size = len(tokenizer)
            text.eos_token_id, text.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
            text.bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else text.bos_token_id
        elif len(tokenizer) > text.vocab_size:
            raise HfSslError(f"the tokenizer has {len(tokenizer)} tokens but the text tower embeds only "
                             f"{text.vocab_size}: use the text tower's own tokenizer")
        if text.pad_token_id is None:
            text.pad_token_id = tokenizer.pad_token_id

    @staticmethod
    def _processor(config, tokenizer: PreTrainedTokenizerBase):
        size = config.image_size
        image_processor = CLIPImageProcessor(
            do_convert_rgb=True, do_resize=True, size={"shortest_edge": size}, resample=2, do_center_crop=True,
            crop_size={"height": size, "width": size}, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
            image_mean=list(config.image_mean), image_std=list(config.image_std))
        processor_class = CLIPProcessor if config.backbone_config.model_type == "clip" else VisionTextDualEncoderProcessor
        return processor_class(image_processor=image_processor, tokenizer=tokenizer)

    def evaluate(self, model_dir: str | os.PathLike, spec: EvaluationSpec, dataset: ImageDataset | None = None,
                 images: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, Any]]:
        dataset = dataset or self.load_dataset(spec.data)
        model, processor = load_image_text_model(model_dir)
        image_processor = processor.image_processor
        return evaluate_image_text_model(
            model, processor.tokenizer, dataset, image_processor.crop_size["height"],
            model.config.vision_config.num_channels, image_processor.image_mean, image_processor.image_std,
            spec.protocols, k=spec.k, images=images, shots=spec.shots, episodes=spec.episodes)

    def plots(self, model, config, dataset: ImageDataset, prepared: PreparedData, plots_dir: Path) -> None:
        """The image tower's plots: the projection of the (L2-normalised) image embeddings the evaluation uses."""
        native = model.exported_model()
        draw_image_plots(model, config, dataset, prepared, plots_dir,
                         lambda images: image_embeddings(native, images, config.image_mean, config.image_std))

    def verify_export(self, out_dir: Path, config, dataset: ImageDataset) -> None:
        if not (out_dir / "tokenizer.json").is_file():  # without it, pipeline tokenizes everything as unknown
            raise HfSslError(f"export error: {out_dir} lacks tokenizer.json")

    @staticmethod
    def _check_prompt_lengths(config, tokenizer: PreTrainedTokenizerBase, dataset: ImageDataset) -> None:
        """`pipeline("zero-shot-image-classification")` pads but does not truncate: a label prompt longer than the
        text tower's positions crashes there. Checked before training, for the class names and templates used."""
        if not dataset.class_names:
            return
        prompts = [template.format(prompt_name(name)) for name in dataset.class_names
                   for template in (*EVAL_TEMPLATES, PIPELINE_TEMPLATE)]
        longest = max(len(ids) for ids in tokenizer(prompts)["input_ids"])
        if longest > config.text_config.max_position_embeddings:
            raise HfSslError(f"zero-shot prompts of {longest} tokens exceed the text tower's "
                             f"{config.text_config.max_position_embeddings} positions (max_position_embeddings); "
                             "pipeline would crash on them: give the text tower more positions")

    def card_fields(self, model, config, dataset: ImageDataset, start: StartingPoint) -> dict[str, Any]:
        native = model.exported_model()
        return dict(
            image_size=config.image_size, backbone_description=describe_backbone(native),
            vision_description=describe_backbone(native.vision_model),
            text_description=describe_backbone(native.text_model),
            captions=(f"the `{dataset.text_column}` column" if dataset.text_column else
                      f"{len(TRAIN_TEMPLATES)} prompt templates filled with the class name (\"{TRAIN_TEMPLATES[0]}\"); "
                      f"zero-shot evaluation uses {len(EVAL_TEMPLATES)} other templates"),
            class_names=[prompt_name(n) for n in dataset.class_names] if dataset.class_names else [],
        )


register_modality(ImageTextModality())
