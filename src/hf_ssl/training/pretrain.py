"""`hf-ssl pretrain`: build a method from a preset, train it with `Trainer`, export OUT, evaluate, write the card.

Everything that can be wrong with the user's input (method, preset, backbone, hyperparameters, data,
output path) is checked before OUT is touched. Only the main process exports and evaluates, so the same
code runs unchanged under `torchrun` / `accelerate launch`.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import PretrainedConfig, Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..data.collators import UInt8ImageDataset
from .callbacks import CollapseMonitorCallback, LossTermsCallback, MomentumUpdateCallback
from ..data.datasets import ImageDataset, load_image_dataset
from ..data.images import images_to_tensor
from ..errors import HfSslError
from ..evaluation.image_protocols import evaluate_image_encoder
from ..hub.card import EVAL_RESULTS_FILE, write_model_card
from ..hub.export import export_pretrained, write_json_atomic
from ..modeling.image_method import method_config_fields
from ..nn.backbone import (
    backbone_config_from_spec, describe_backbone, is_checkpoint_spec, is_token_backbone,
)
from ..registry import Method

CHECKPOINTS_SUBDIR = "checkpoints"


@dataclass
class PretrainArguments:
    """What to train on and how to evaluate; the method's own hyperparameters and every
    `TrainingArguments` flag are accepted too."""

    method: str = field(default="mae", metadata={"help": "SSL method (see `hf-ssl list`)"})
    dataset: str = field(default="digits", metadata={
        "help": "digits | fashion_mnist | imagefolder:PATH | a Hub dataset id or local dataset folder"})
    data_dir: str | None = field(default=None, metadata={"help": "where a built-in dataset's files are"})
    image_column: str | None = field(default=None, metadata={"help": "image column (auto-detected)"})
    label_column: str | None = field(default=None, metadata={"help": "label column for evaluation (auto-detected)"})
    preset: str | None = field(default=None, metadata={"help": "tiny | small | base (default: the method's)"})
    backbone: str | None = field(default=None, metadata={
        "help": "backbone preset name, config .json, or checkpoint folder / Hub id to start from"})
    image_size: int | None = field(default=None, metadata={"help": "input size in pixels (overrides the preset)"})
    patch_size: int | None = field(default=None, metadata={"help": "ViT patch size (overrides the preset)"})
    eval_protocols: str = field(default="knn,linear", metadata={
        "help": "comma-separated protocols run on the test split after training (knn, linear), or 'none'"})
    knn_k: int = field(default=20, metadata={"help": "neighbours of the kNN evaluation"})
    pooling: str = field(default="auto", metadata={"help": "feature pooling for evaluation: auto | cls | mean"})


def build_config(method: Method, args: PretrainArguments, overrides: dict[str, Any]) -> tuple[PretrainedConfig, str | None]:
    """Preset -> config, with `--backbone`, `--image_size`, `--patch_size` and method flags applied.

    Returns the config and the checkpoint to initialise the backbone from (None: random init).
    """
    preset_name = args.preset or method.default_preset
    if preset_name not in method.presets:
        raise HfSslError(f"unknown preset '{preset_name}' for {method.name} (available: {', '.join(method.presets)})")
    config_kwargs = dict(method.presets[preset_name].config)
    backbone_spec = config_kwargs.pop("backbone")
    backbone_overrides = dict(config_kwargs.pop("backbone_overrides", {}))
    if args.backbone is not None:
        backbone_spec = args.backbone
        # A user-chosen architecture keeps only the preset's input geometry; a checkpoint keeps its own.
        keep = () if is_checkpoint_spec(backbone_spec) else ("image_size", "patch_size")
        backbone_overrides = {k: v for k, v in backbone_overrides.items() if k in keep}
    backbone_config, checkpoint = backbone_config_from_spec(backbone_spec, **backbone_overrides)
    # --image_size / --patch_size go wherever the field exists: a ViT config has both, a ResNet neither (the
    # method config then holds the input size).
    geometry = {k: getattr(args, k) for k in ("image_size", "patch_size") if getattr(args, k) is not None}
    config_kwargs.update({k: v for k, v in overrides.items() if v is not None})
    try:
        for name, value in geometry.items():
            if hasattr(backbone_config, name):
                setattr(backbone_config, name, value)  # strict configs validate on assignment
            if name in method_config_fields(method.config_class):
                config_kwargs[name] = value
        config = method.config_class(backbone_config=backbone_config, **config_kwargs)
    except (StrictDataclassClassValidationError, ValueError, TypeError) as e:
        raise HfSslError(f"invalid {method.name} configuration: {_innermost_message(e)}") from None
    return config, checkpoint


def run_pretraining(method: Method, args: PretrainArguments, training_args: TrainingArguments,
                    overrides: dict[str, Any], command: str) -> dict[str, Any]:
    out_dir = Path(training_args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise HfSslError(f"--output_dir {out_dir} is a file, not a folder")
    config, checkpoint = build_config(method, args, overrides)
    dataset = load_image_dataset(args.dataset, args.data_dir, args.image_column, args.label_column)
    protocols = [] if args.eval_protocols == "none" else [p.strip() for p in args.eval_protocols.split(",") if p.strip()]

    with training_args.main_process_first(desc="preparing images"):
        train_images = images_to_tensor(dataset.splits[dataset.train_split], dataset.image_column,
                                        config.image_size, config.num_channels,
                                        min_size=getattr(config, "patch_size", 1))
    model = method.model_class(config)
    if checkpoint is not None:
        model.load_encoder_weights(checkpoint)

    checkpoints_dir = out_dir / CHECKPOINTS_SUBDIR
    training_args = dataclasses.replace(training_args, output_dir=str(checkpoints_dir), remove_unused_columns=False)
    # Per-step side effects (EMA teachers, schedules, queues) live in model hooks the callbacks call once per
    # optimizer step; models without the hooks (MAE) are left alone.
    trainer = Trainer(model=model, args=training_args, train_dataset=UInt8ImageDataset(train_images),
                      data_collator=method.make_collator(config), callbacks=[MomentumUpdateCallback()])
    # first, so that reporting integrations see the logged embedding_std and loss terms
    trainer.callback_handler.callbacks[:0] = [CollapseMonitorCallback(), LossTermsCallback()]
    last_checkpoint = get_last_checkpoint(str(checkpoints_dir)) if checkpoints_dir.is_dir() else None
    if last_checkpoint and trainer.is_world_process_zero():
        print(f"Resuming from {last_checkpoint}")
    start = time.time()
    train_output = trainer.train(resume_from_checkpoint=last_checkpoint)
    train_minutes = (time.time() - start) / 60
    if not trainer.is_world_process_zero():
        return {}

    run_info = _run_info(method, args, config, dataset, trainer, train_output, train_images.shape[0],
                         train_minutes, command, checkpoint, out_dir)
    export_pretrained(trainer.model, method, out_dir, run_info)
    results = {}
    if protocols and dataset.label_column is not None and dataset.test_split is not None:
        results = evaluate_image_encoder(
            trainer.model.exported_encoder(), dataset, config.image_size, config.num_channels, config.image_mean,
            config.image_std, protocols=protocols, pooling=args.pooling, k=args.knn_k,
            images={dataset.train_split: train_images})
        write_json_atomic(out_dir / EVAL_RESULTS_FILE, results)
    elif protocols:
        print(f"Not evaluated: {dataset.name} has no labelled test split.")
    write_model_card(out_dir, run_info, results)
    return results


def _run_info(method, args, config, dataset: ImageDataset, trainer, train_output, num_images, train_minutes,
              command, checkpoint, out_dir) -> dict[str, Any]:
    targs = trainer.args
    world = targs.world_size
    effective_batch = targs.per_device_train_batch_size * targs.gradient_accumulation_steps * world
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {platform.machine()})")
    encoder = trainer.model.exported_encoder()
    own_fields = [f for f in method_config_fields(method.config_class) if f not in ("image_mean", "image_std", "initializer_range")]
    return dict(
        method=method.name, method_name=method.display_name, method_summary=method.summary, paper=method.paper,
        method_limitations=method.limitations, tags=list(method.tags), preset=args.preset or method.default_preset,
        dataset=dataset.name, dataset_name=dataset.name, train_split=dataset.train_split, num_train_images=num_images,
        image_size=config.image_size, model_name=out_dir.resolve().name,
        backbone_description=describe_backbone(encoder), architecture=type(encoder).__name__,
        global_step=trainer.state.global_step, epochs=trainer.state.global_step * effective_batch / max(num_images, 1),
        effective_batch_size=effective_batch, learning_rate=targs.learning_rate,
        lr_scheduler_type=str(getattr(targs.lr_scheduler_type, "value", targs.lr_scheduler_type)),
        warmup=targs.warmup_steps, weight_decay=targs.weight_decay,
        hyperparameters=", ".join(f"{name}={getattr(config, name)}" for name in own_fields),
        hardware=f"{world} x {device}" + (", bf16" if targs.bf16 else ""), train_minutes=train_minutes,
        final_loss=losses[-1] if losses else None, command=command,
        base_model=checkpoint if checkpoint and not os.path.exists(checkpoint) else None,
        feature_snippet="[:, 1:].mean(1)  # the features evaluated above" if is_token_backbone(encoder.config) else "",
        usage_note=("`AutoModel` adds a randomly initialised `pooler` to ViT (the warning about it is expected): "
                    "use `last_hidden_state`, not `pooler_output`.") if is_token_backbone(encoder.config) else "",
        pooling_description=("mean of the patch tokens" if args.pooling in ("auto", "mean") else "the [CLS] token")
        if getattr(config.backbone_config, "patch_size", None) else "global average pooling",
    )


def _innermost_message(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
