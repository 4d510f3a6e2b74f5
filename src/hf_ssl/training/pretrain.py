"""`hf-ssl pretrain`: build a method from a preset, train it with `Trainer`, export OUT, evaluate, write the card.

Everything that can be wrong with the user's input (method, preset, backbone, hyperparameters, data,
output path) is checked before OUT is touched. Only the main process exports and evaluates, so the same
code runs unchanged under `torchrun` / `accelerate launch`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import PretrainedConfig, Trainer, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy, enable_full_determinism, set_seed
from transformers.utils import SAFE_WEIGHTS_NAME

from ..errors import HfSslError
from ..evaluation.online import OnlineEvaluation
from ..hub.card import EVAL_RESULTS_FILE, write_model_card
from ..hub.export import apply_umask, export_pretrained, portable_value, write_json_atomic
from ..hub.plots import LOSS_PLOT, plot_loss_curve, write_plots
from ..hub.push import push_folder, validate_repo_id
from ..modalities import DataSpec, EvaluationSpec, Modality, PreparedData, StartingPoint, get_modality
from ..modeling.image_method import ImageMethodConfig, method_config_fields
from ..modeling.method_model import MethodModel
from ..nn.backbone import is_token_backbone
from ..nn.backbone_presets import backbone_config_from_spec, is_checkpoint_spec
from ..registry import Method, Preset
from .callbacks import (CollapseMonitorCallback, DivergenceError, LossTermsCallback, NonFiniteGuardCallback,
                        OptimizerStepCallback, unwrap_model)
from .checkpoints import CHECKPOINTS_SUBDIR, OutputLock, check_resumable, last_complete_checkpoint
from .seeded_collation import (DEFERRED_EXAMPLES, BatchIndices, SeededCollationCallback, SeededCollator,
                               fetch_examples)


BASELINES_AUTO_MAX_IMAGES = 20_000  # `--eval_baselines auto`: digits and small image folders, not Fashion-MNIST


@dataclass
class PretrainArguments:
    """What to train on and how to evaluate; the method's own hyperparameters and every
    `TrainingArguments` flag are accepted too."""

    # The quick start's method (`hf-ssl pretrain` with no arguments): the autoencoder's `small` recipe is the one that
    # beats raw pixels on digits under both kNN and the linear probe within about two minutes (README, Quick start);
    # MAE's beats them on the linear probe only.
    method: str = field(default="autoencoder", metadata={"help": "SSL method (see `hf-ssl list`)"})
    dataset: str | None = field(default=None, metadata={
        "help": "images: digits (default) | fashion_mnist | imagefolder:PATH; text: python-docs (default) | austen | "
                "text:GLOB; or a Hub dataset id or local dataset folder"})
    data_dir: str | None = field(default=None, metadata={"help": "where a built-in dataset's files are"})
    streaming: bool = field(default=False, metadata={
        "help": "image methods on a Hub dataset, a local dataset folder (Parquet, Arrow) or WebDataset shards: read "
                "the data as training iterates it, never downloaded or cached whole (needs --max_steps; each process "
                "reads its own shards; shuffled in a buffer of 10,000 examples; evaluate afterwards with `hf-ssl "
                "evaluate`)"})
    image_column: str | None = field(default=None, metadata={"help": "image column (auto-detected)"})
    label_column: str | None = field(default=None, metadata={"help": "label column for evaluation (auto-detected)"})
    text_column: str | None = field(default=None, metadata={"help": "caption column of image-text data (auto-detected)"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "text methods and CLIP: a tokenizer folder or Hub id to use instead of training one on the data; "
                "BEiT: the output folder of `hf-ssl pretrain --method visual_tokenizer`"})
    preset: str | None = field(default=None, metadata={"help": "tiny | small | base (default: the method's)"})
    min_steps: int = field(default=0, metadata={
        "help": "with a schedule in epochs (no --max_steps), train at least this many optimizer steps. The `small` "
                "presets set it: their epochs are sized for Fashion-MNIST (60,000 images, 15 minutes on a 2-core "
                "CPU), which on a small dataset such as digits (1,437 images) would be a few dozen steps. 0: epochs "
                "only"})
    backbone: str | None = field(default=None, metadata={
        "help": "backbone preset name, config .json, or checkpoint folder / Hub id to start from"})
    image_size: int | None = field(default=None, metadata={"help": "input size in pixels (overrides the preset)"})
    patch_size: int | None = field(default=None, metadata={"help": "ViT patch size (overrides the preset)"})
    eval_protocols: str = field(default="auto", metadata={
        "help": "comma-separated protocols run on the test split after training (image encoders: knn, linear, few-shot, finetune; "
                "CLIP: zero-shot, retrieval, knn, linear), 'auto' (the method's usual ones) or 'none'"})
    knn_k: int = field(default=20, metadata={"help": "neighbours of the kNN evaluation"})
    eval_baselines: str = field(default="auto", metadata={
        "help": "image encoders: run the frozen-feature protocols on raw pixels and on a randomly initialised twin of "
                "the encoder too, printed and shown in the card beside its results; 'auto': when the training split "
                f"has at most {BASELINES_AUTO_MAX_IMAGES:,} images (a linear probe on the raw pixels of Fashion-MNIST "
                "takes over 8 minutes on 2 cores)", "choices": ["auto", "true", "false"]})
    augment_on_device: str = field(default="auto", metadata={
        "help": "image methods: run the batched augmentation and masking on the training device, on the batch the step "
                "receives, the DataLoader only decoding; 'auto': on a GPU (on a CPU the DataLoader augments, in its "
                "workers when it has some)", "choices": ["auto", "true", "false"]})
    on_nonfinite: str = field(default="stop", metadata={
        "help": "a step with non-finite gradients: 'stop' the run (non-zero exit, nothing exported, checkpoints kept) "
                "or 'skip' the step (counted in the log as nonfinite_steps_skipped)",
        "choices": ["stop", "skip"]})

    def data_spec(self) -> DataSpec:
        return DataSpec(self.dataset, self.data_dir, self.image_column, self.label_column, self.text_column,
                        self.streaming)


def build_config(method: Method, args: PretrainArguments, overrides: dict[str, Any]) -> tuple[PretrainedConfig, str | None]:
    """Preset -> config, with `--backbone`, `--image_size`, `--patch_size` and method flags applied.

    Returns the config and the checkpoint to initialise the backbone from (None: random init).
    """
    preset_name = args.preset or method.default_preset
    if preset_name not in method.presets:
        raise HfSslError(f"unknown preset '{preset_name}' for {method.name} (available: {', '.join(method.presets)})")
    config_kwargs = dict(method.presets[preset_name].config)
    backbone_spec = config_kwargs.pop("backbone", None)  # None: a method without a backbone (word2vec)
    if backbone_spec is None:
        if args.backbone is not None:
            raise HfSslError(f"{method.name} has no backbone: --backbone does not apply")
        try:
            return method.config_class(**{k: v for k, v in {**config_kwargs, **overrides}.items() if v is not None}), None
        except (StrictDataclassClassValidationError, ValueError, TypeError) as e:
            raise HfSslError(f"invalid {method.name} configuration: {_innermost_message(e)}") from None
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
    # image-text models (CLIP) keep the image geometry in their vision tower's config
    vision_config = getattr(backbone_config, "vision_config", backbone_config)
    config_kwargs.update({k: v for k, v in overrides.items() if v is not None})
    # A run flag the method's config also declares goes into the config too (BEiT's --tokenizer: the visual
    # tokenizer whose ids it predicts; a method config's own image_size).
    config_kwargs.update({f.name: getattr(args, f.name) for f in dataclasses.fields(args)
                          if f.name in method_config_fields(method.config_class) and getattr(args, f.name) is not None})
    try:
        for name, value in geometry.items():
            if hasattr(vision_config, name):
                setattr(vision_config, name, value)  # strict configs validate on assignment
        config = method.config_class(backbone_config=backbone_config, **config_kwargs)
    except (StrictDataclassClassValidationError, ValueError, TypeError) as e:
        raise HfSslError(f"invalid {method.name} configuration: {_innermost_message(e)}") from None
    return config, checkpoint


def run_pretraining(method: Method, args: PretrainArguments, training_args: TrainingArguments,
                    overrides: dict[str, Any], command: str) -> dict[str, Any]:
    """The whole run: check the input, then, holding OUT's lock, prepare the data and the model, train (resuming
    from the last complete checkpoint), and on the main process export OUT, evaluate it, write its card and push it.
    Returns the evaluation results ({} on the other processes)."""
    out_dir = Path(training_args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise HfSslError(f"--output_dir {out_dir} is a file, not a folder")
    hub = _hub_destination(training_args)  # checked now, not after hours of training
    modality = get_modality(method.modality)
    requested = _requested_protocols(args.eval_protocols)
    config, checkpoint = build_config(method, args, overrides)
    if args.streaming and not modality.streams:
        raise HfSslError(f"--streaming: {method.name} trains on {modality.model_description}'s data in memory; "
                         "streaming is for the image SSL methods")
    if args.streaming and training_args.max_steps <= 0:
        raise HfSslError("--streaming needs --max_steps: a streamed dataset's length is unknown, so epochs are too")
    dataset = modality.load_dataset(args.data_spec())
    protocols = modality.resolve_protocols(requested, dataset, config)
    if requested is None and not protocols:
        print(f"Not evaluated after training: no {modality.name} protocol applies to {dataset.name} (a labelled test "
              "split, or the protocol's reference files, are missing).")
    evaluates_online = training_args.eval_strategy != IntervalStrategy.NO
    if evaluates_online:  # checked now, not at the first evaluation
        if modality.online_protocol is None:
            raise HfSslError(f"--eval_steps / --eval_strategy: {method.name} has no evaluation during training "
                             f"({modality.model_description} is evaluated after training only)")
        modality.resolve_protocols([modality.online_protocol], dataset, config)  # a labelled test split, say

    # One writer per OUT, from the first file this run writes to the last; the main process holds the lock for
    # all the processes of a multi-process run.
    with OutputLock(out_dir) if training_args.process_index == 0 else contextlib.nullcontext():
        # Trainer seeds every generator when it is built, but the data preparation (a tokenizer's or a vocabulary's
        # training, a labelled subset) and the model's initial weights come before it: seeded here too, the same
        # --seed gives the same initial weights (two runs differed by up to 0.6 after 12 MAE steps without this).
        if training_args.full_determinism:
            enable_full_determinism(training_args.seed)
        else:
            set_seed(training_args.seed)
        start = StartingPoint(tokenizer=args.tokenizer, checkpoint=checkpoint)
        # after training (the protocols) and during it (`online_protocol`, at --eval_steps)
        spec = EvaluationSpec(protocols=tuple(protocols), data=args.data_spec(), k=args.knn_k)
        trainer, prepared = _prepare_trainer(method, modality, args, training_args, config, dataset, start,
                                             spec if evaluates_online else None)
        num_examples = len(prepared.train_dataset) if not args.streaming else None  # a stream's is unknown
        # The preset's epochs are sized for a dataset of Fashion-MNIST's size; a much smaller one gets `min_steps`
        # instead. Set before `train()`, which builds the learning-rate schedule from it.
        trainer.args.max_steps = scheduled_steps(training_args, num_examples, args.min_steps)
        baselines = args.eval_baselines == "true" or (
            args.eval_baselines == "auto" and (num_examples or 0) <= BASELINES_AUTO_MAX_IMAGES)
        spec = dataclasses.replace(spec, baselines=baselines)
        train_minutes = _train(trainer, num_examples)
        if not trainer.is_world_process_zero():
            return {}
        run_info = _run_info(method, modality, args, config, dataset, trainer, num_examples,
                             train_minutes, command, start, out_dir)
        run_info.update(prepared.record)  # facts of the data (a semi-supervised run's labelled ids), last: exact
        if hub is not None:
            run_info["repo_id"] = hub["repo_id"]  # the card's loading code names the repo it is published in
        results = _export_and_evaluate(trainer, method, modality, config, dataset, prepared, spec, run_info, out_dir)
        if hub is not None:
            try:
                commit_url = push_folder(out_dir, **hub)
            except HfSslError as e:  # the run is not lost: say how to publish it later
                raise HfSslError(f"{e} (OUT is complete: publish it with `hf-ssl push {out_dir} --repo_id "
                                 f"{hub['repo_id']}`)") from None
            print(f"Pushed {out_dir} to {hub['repo_id']}: {commit_url}")
        return results


def _prepare_trainer(method: Method, modality: Modality, args: PretrainArguments, training_args: TrainingArguments,
                     config: PretrainedConfig, dataset: Any, start: StartingPoint,
                     online_spec: EvaluationSpec | None) -> tuple[SSLTrainer, PreparedData]:
    """The training data (the modality's), the model built from `config` with its pretrained parts, and the
    Trainer that trains it into OUT/checkpoints, each batch drawn from its own seed; with `online_spec`, evaluating
    the model during training as Trainer's evaluation strategy says (`evaluation.online`)."""
    checkpoints_dir = Path(training_args.output_dir) / CHECKPOINTS_SUBDIR
    with training_args.main_process_first(desc="preparing the training data"):
        prepared = modality.prepare(config, dataset, start, str(checkpoints_dir))
    model = method.model_class(config)
    model.load_pretrained_parts()
    if start.checkpoint is not None:
        model.load_encoder_weights(start.checkpoint)

    # push_to_hub=False: Trainer would push checkpoints/ (optimizer states) at every save and contact the Hub
    # when it is built; OUT, the Hub-ready folder, is pushed once at the end instead (_hub_destination).
    # restore_callback_states_from_checkpoint: a resumed run gets back the callbacks' state too (the count of
    # skipped non-finite steps), not only the model's, the optimizer's and the schedule's.
    # dataloader_num_workers AUTO_LOADER_WORKERS (the CLI's default): what the data asks for, else `loader_workers`.
    workers = training_args.dataloader_num_workers
    if workers == AUTO_LOADER_WORKERS:
        # torchrun and accelerate launch say how many processes share this machine's cores
        workers = (prepared.loader_workers if prepared.loader_workers is not None
                   else loader_workers(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    training_args = dataclasses.replace(training_args, output_dir=str(checkpoints_dir),
                                        remove_unused_columns=False, push_to_hub=False,
                                        restore_callback_states_from_checkpoint=True, dataloader_num_workers=workers)
    # One batch through the method's data pipeline before Trainer starts: a mistake the collator detects
    # (colorization on grayscale images, crops that do not fit) ends the run here, not in its first step, and
    # OutputLock removes the OUT that only its lock file is in. Trainer seeds every generator when it is built,
    # so this batch changes no random draw of the training.
    # A streamed dataset is not checked so: its first example comes after a shuffle buffer's worth is read.
    collate = method.make_collator(config)
    streamed = isinstance(prepared.train_dataset, IterableDataset)
    if not streamed:
        first = range(min(len(prepared.train_dataset), training_args.per_device_train_batch_size))
        collate(fetch_examples(prepared.train_dataset, first))
    else:
        # accelerate gives each process its own shards of a `datasets.IterableDataset` only when the main process
        # does not read every batch and dispatch it (its default for iterable datasets)
        training_args = dataclasses.replace(training_args, accelerator_config=dataclasses.replace(
            training_args.accelerator_config, dispatch_batches=False))
    # Each batch's random draws (augmentation, masking, sampling in the dataset) from its own seed, whenever it
    # is fetched: a resumed run fetches the batches it resumes with again, and must draw what the uninterrupted
    # run drew. Trainer's data loader therefore samples indices; the collator fetches the examples (a stream's
    # examples come in the stream's own seeded order, and only their collation is seeded so).
    collator = SeededCollator(collate, None if streamed else prepared.train_dataset, training_args.seed,
                              training_args.process_index,
                              on_device=_collates_on_device(args.augment_on_device, training_args, prepared, method))
    # The method's per-step side effects (EMA teachers, schedules, queues) run in its `on_optimizer_step`, which
    # this callback calls once per optimizer step (a no-op for most methods).
    online = None if online_spec is None else modality.online_evaluation(config, dataset, prepared, online_spec)
    if online is not None and training_args.process_index == 0:
        print(f"Evaluating during training: {online.description}")
    trainer = SSLTrainer(model=model, args=training_args,
                         train_dataset=prepared.train_dataset if streamed else BatchIndices(prepared.train_dataset),
                         eval_dataset=online, data_collator=collator,
                         callbacks=[OptimizerStepCallback(), NonFiniteGuardCallback(args.on_nonfinite),
                                    SeededCollationCallback(collator)])
    # first, so that reporting integrations and the printed logs see the logged embedding_std, loss terms and
    # what the data's own callbacks add (the semi-supervised monitor's pseudo-label accuracy)
    trainer.callback_handler.callbacks[:0] = [CollapseMonitorCallback(), LossTermsCallback(), *prepared.callbacks]
    return trainer, prepared


def _collates_on_device(requested: str, training_args: TrainingArguments, prepared: PreparedData,
                        method: Method) -> bool:
    """`--augment_on_device`: "true", or "auto" on a GPU, where the data's examples stack (images of one size)."""
    if requested == "true" and not prepared.examples_stack:
        raise HfSslError(f"--augment_on_device true: {method.name}'s examples are not images of one size, they are "
                         "collated where they are fetched")
    return prepared.examples_stack and (requested == "true" or (requested == "auto"
                                                                and training_args.device.type == "cuda"))


AUTO_LOADER_WORKERS = -1  # `--dataloader_num_workers -1`, the CLI's default: chosen by `loader_workers`
MAX_LOADER_WORKERS = 8


def loader_workers(processes_on_machine: int) -> int:
    """DataLoader workers: the cores this process has, less one for the step, up to `MAX_LOADER_WORKERS`, so that
    decoding, augmentation and masking overlap the step. Measured with SimCLR small on Fashion-MNIST (in memory,
    40 steps, 2 cores): one worker 1.07x and 1.06x the images/s of none in two runs, the step waiting for data
    0.2% of the time instead of 6%; image files are decoded in the workers too."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_LOADER_WORKERS, cores // max(1, processes_on_machine) - 1))


def bf16_by_default(config: PretrainedConfig, preset: Preset | None = None) -> bool:
    """Whether a run trains in bf16 autocast when `--bf16` is not given: on a GPU that has bf16; on a CPU with native
    bf16 (avx512_bf16 or AMX, as oneDNN reports it) where the preset says so (`Preset.cpu_bf16`, measured on this
    project's 2-core CPU), else for transformer backbones (ViT, DeiT, BEiT, DINOv2): MAE `small` trained 1.5x the
    images/s of fp32 in bf16 (`nn.attention`). The ResNet `small` presets on 32 px images take 1.2-1.7x less time a
    model step in bf16; on 8 px tiles (jigsaw, relative patch location) and SwAV's multi-crop, 0.55-0.85x."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    if preset is not None and preset.cpu_bf16 is not None:
        return preset.cpu_bf16
    # An image method's backbone (ImageMethodConfig's contract); text methods' backbones are never token backbones
    return (isinstance(config, ImageMethodConfig) and config.backbone_config is not None
            and is_token_backbone(config.backbone_config))


def scheduled_steps(training_args: TrainingArguments, num_examples: int | None, min_steps: int) -> int:
    """`--max_steps` as the run will use it: the given one, or, for a schedule in epochs (max_steps <= 0), the
    epochs' optimizer steps raised to `min_steps` when they are fewer (-1, Trainer's "count the epochs", when they
    are not)."""
    if training_args.max_steps > 0 or min_steps <= 0 or not num_examples:
        return training_args.max_steps
    return min_steps if epoch_steps(training_args, num_examples) < min_steps else training_args.max_steps


def epoch_steps(training_args: TrainingArguments, num_examples: int) -> int:
    """The optimizer steps of `num_train_epochs` epochs of `num_examples`, as Trainer counts them: each process
    iterates ceil(examples / (per-device batch x processes)) batches an epoch, and an optimizer step takes
    `gradient_accumulation_steps` of them."""
    batches = math.ceil(num_examples / (training_args.per_device_train_batch_size * training_args.world_size))
    steps_per_epoch = max(batches // training_args.gradient_accumulation_steps, 1)
    return math.ceil(training_args.num_train_epochs * steps_per_epoch)


def _train(trainer: SSLTrainer, num_examples: int | None) -> float:
    """Train, resuming from the last complete checkpoint of OUT/checkpoints when this run can continue it
    (`check_resumable`); the training time in minutes. A diverged run ends in one line naming its last good
    checkpoint."""
    args = trainer.args
    checkpoints_dir = Path(args.output_dir)
    # An incomplete checkpoint (killed while writing it) is skipped and, by the main process, removed; the
    # others wait for it at main_process_first, so that every process resumes from the same checkpoint.
    with args.main_process_first(desc="finding the checkpoint to resume from"):
        last_checkpoint = last_complete_checkpoint(checkpoints_dir, remove_incomplete=args.process_index == 0)
    if last_checkpoint:
        total_steps = (args.max_steps if args.max_steps > 0 else
                       epoch_steps(args, num_examples) if num_examples else None)
        check_resumable(last_checkpoint, None if args.auto_find_batch_size else args.train_batch_size,
                        total_steps)
        if trainer.is_world_process_zero():
            print(f"Resuming from {last_checkpoint}")
    start_time = time.time()
    try:
        trainer.train(resume_from_checkpoint=last_checkpoint)
    except DivergenceError as e:
        good = last_complete_checkpoint(checkpoints_dir, remove_incomplete=False)
        raise HfSslError(f"{e}; nothing exported. " + (
            f"The last good checkpoint is {good} (a re-run resumes from it); " if good else
            "No checkpoint was saved before it; ") + "try a lower --learning_rate, or --on_nonfinite skip") from None
    return (time.time() - start_time) / 60


def _export_and_evaluate(trainer: SSLTrainer, method: Method, modality: Modality, config: PretrainedConfig,
                         dataset: Any, prepared: PreparedData, spec: EvaluationSpec, run_info: dict[str, Any],
                         out_dir: Path) -> dict[str, Any]:
    """Export the trained model into OUT, evaluate the export as users load it (by the same code as `hf-ssl evaluate
    OUT`, reusing the splits already decoded for training), draw the plots and write the card; the results."""
    trained: MethodModel = trainer.model
    export_pretrained(trained, method, out_dir, run_info, prepared.processor)
    modality.verify_export(out_dir, config, dataset)
    results = modality.evaluate(out_dir, spec, dataset=dataset, images=prepared.images) if spec.protocols else {}
    if results:
        write_json_atomic(out_dir / EVAL_RESULTS_FILE, results)
    write_plots(out_dir, lambda plots_dir: _draw_plots(trainer, modality, config, dataset, prepared, plots_dir))
    write_model_card(out_dir, run_info, results)  # links the plots now in OUT/plots
    return results


class SSLTrainer(Trainer):
    """Trainer, with what pretraining adds to it: weights resumed through `from_pretrained` (legacy names), checkpoints
    that respect the umask, the modality's online protocol as the evaluation (`--eval_steps`), `data_wait_share` in
    every training log, out of weight decay what a model lists in `no_weight_decay()` (timm's convention, part of
    the method contract) on top of Trainer's own exclusions (biases, norms): a learned temperature, for example, and
    the optimizer a model names in `optimizer_override(args)` in place of `--optim` (word2vec's LazyAdam)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the share of time spent waiting for data since the previous log (`get_batch_samples`, `log`)
        self._data_wait_seconds = 0.0
        self._log_interval_start: float | None = None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Trainer loads a checkpoint's weights with `load_state_dict(strict=False)`, but transformers 5's
        `save_pretrained` writes some models' weights under their legacy names (ViT's module
        `layers.0.attention.q_proj` as `encoder.layer.0.attention.attention.query`) that only `from_pretrained` maps
        back: every resumed ViT run silently restarted its encoder from the initial weights (checked in 5.25). The
        weights are loaded through `from_pretrained` instead, and every key must match."""
        if self.is_fsdp_enabled or not os.path.isfile(os.path.join(resume_from_checkpoint, SAFE_WEIGHTS_NAME)):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        target = unwrap_model(model if model is not None else self.model)
        loaded, info = type(target).from_pretrained(resume_from_checkpoint, config=target.config,
                                                    output_loading_info=True)
        mismatched = {*info["missing_keys"], *info["unexpected_keys"]}  # (shape mismatches raise in the load)
        if mismatched:
            raise HfSslError(f"checkpoint {resume_from_checkpoint} does not match the model: "
                             f"{', '.join(sorted(mismatched)[:5])}")
        target.load_state_dict(loaded.state_dict())

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:  # the weights are written 0600 whatever the umask (see `apply_umask`)
            apply_umask(Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")

    def evaluate(self, eval_dataset: OnlineEvaluation | None = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Trainer's evaluation loop computes a loss on held-out batches; an SSL loss on held-out data says little
        (it is the training objective), so the evaluation Trainer schedules (`--eval_steps`, `--eval_strategy`,
        `--eval_on_start`) runs the modality's online protocol instead (`evaluation.online`: kNN accuracy and RankMe
        of the encoder's features). Logged like Trainer's own metrics, `eval_knn_accuracy` at its step, and handed to
        the callbacks (`metric_for_best_model` can name it)."""
        online = eval_dataset if eval_dataset is not None else self.eval_dataset
        start = time.time()
        scores = online.evaluate(unwrap_model(self.model))
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in scores.items()}
        metrics[f"{metric_key_prefix}_runtime"] = round(time.time() - start, 4)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    def _prepare_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Trainer moves a batch to the training device here; a batch whose collation was deferred to that device
        (`--augment_on_device`) is collated now, and what the collation made on the CPU (a mask drawn there) moved
        too."""
        inputs = super()._prepare_inputs(inputs)
        if DEFERRED_EXAMPLES in inputs:
            inputs = super()._prepare_inputs(self.data_collator.collate_on_device(inputs))
        return inputs

    # --- the share of time spent waiting for data, logged as `data_wait_share` --------------------------------------

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        """Trainer fetches each optimizer step's batches here: the time it takes is the time the step waits for data
        (the collator's decoding and augmentation without DataLoader workers; with them, whatever they have not
        prepared in advance)."""
        start = time.perf_counter()
        if self._log_interval_start is None:
            self._log_interval_start = start
        batches = super().get_batch_samples(epoch_iterator, num_batches, device)
        self._data_wait_seconds += time.perf_counter() - start
        return batches

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds `data_wait_share` to every training log: the share of the wall time since the previous log spent
        waiting for batches (checkpoints and evaluations in that interval count as not waiting)."""
        if "loss" in logs and self._log_interval_start is not None:
            now = time.perf_counter()
            logs["data_wait_share"] = round(self._data_wait_seconds / max(now - self._log_interval_start, 1e-9), 4)
            self._data_wait_seconds, self._log_interval_start = 0.0, now
        super().log(logs, start_time)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None and self.optimizer_cls_and_kwargs is None:
            override = unwrap_model(model if model is not None else self.model).optimizer_override(self.args)
            if override is not None:  # Trainer builds it with its parameter groups, as it would `--optim`'s
                self.optimizer_cls_and_kwargs = override
        return super().create_optimizer(model)

    # --- sparse gradients (a model whose `optimizer_override` takes them: word2vec's embeddings) ------------------

    def _clip_grad_norm(self, model):
        if any(p.grad is not None and p.grad.is_sparse for p in model.parameters()):
            raise HfSslError("--max_grad_norm: sparse gradients are not clipped; pass --max_grad_norm 0")
        return super()._clip_grad_norm(model)

    def _get_grad_norm(self, model, grad_norm=None):
        """Trainer logs the gradients' 2-norm, computed by a clipping call that sparse gradients fail in: theirs is
        the norm of their coalesced values (duplicate rows summed first). The coalesced gradient then replaces the
        uncoalesced one, so that a step deduplicates its rows once: the non-finite check and the optimizer
        (`LazyAdam` reads a coalesced gradient as it is) see only distinct rows. (Coalescing twice, here and in the
        optimizer, cost word2vec 2.5 ms of a 45 ms step.)"""
        parameters = [p for p in model.parameters() if p.grad is not None]
        if grad_norm is not None or not any(p.grad.is_sparse for p in parameters):
            return super()._get_grad_norm(model, grad_norm)
        for parameter in parameters:
            if parameter.grad.is_sparse:
                parameter.grad = parameter.grad.coalesce()
        norms = [torch.linalg.vector_norm(p.grad._values() if p.grad.is_sparse else p.grad) for p in parameters]
        return torch.linalg.vector_norm(torch.stack(norms))

    def get_decay_parameter_names(self, model) -> list[str]:
        names = super().get_decay_parameter_names(model)
        excluded = unwrap_model(model).no_weight_decay()
        return [name for name in names if name not in excluded]


def _draw_plots(trainer: Trainer, modality: Modality, config: PretrainedConfig, dataset: Any,
                prepared: PreparedData, plots_dir: Path) -> None:
    """Every method's loss curve, then the modality's own plots (embeddings, reconstructions)."""
    plot_loss_curve(trainer.state.log_history, plots_dir / LOSS_PLOT)
    modality.plots(trainer.model, config, dataset, prepared, plots_dir)


def _hub_destination(training_args: TrainingArguments) -> dict[str, Any] | None:
    """`push_folder` arguments from the `--push_to_hub`/`--hub_*` TrainingArguments flags (None: no push)."""
    if not training_args.push_to_hub:
        return None
    if not training_args.hub_model_id:
        raise HfSslError("--push_to_hub needs --hub_model_id ORG/NAME (the repo to publish OUT in)")
    return dict(repo_id=validate_repo_id(training_args.hub_model_id), private=bool(training_args.hub_private_repo),
                revision=training_args.hub_revision, token=training_args.hub_token)


def _requested_protocols(spec: str) -> list[str] | None:
    """`--eval_protocols` as a list (None: 'auto'); the modality checks the names (`Modality.resolve_protocols`)."""
    if spec == "auto":
        return None
    return [] if spec == "none" else [p.strip() for p in spec.split(",") if p.strip()]


def _run_info(method, modality, args, config, dataset, trainer, num_examples, train_minutes, command,
              start: StartingPoint, out_dir) -> dict[str, Any]:
    targs = trainer.args
    world = targs.world_size
    effective_batch = targs.per_device_train_batch_size * targs.gradient_accumulation_steps * world
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {platform.machine()})")
    model: MethodModel = trainer.model
    encoder = model.exported_model()
    own_fields = [f for f in method_config_fields(method.config_class) if f not in ("image_mean", "image_std", "initializer_range")]
    return dict(
        method=method.name, method_name=method.display_name, method_summary=method.summary, paper=method.paper,
        method_limitations=method.limitations, tags=list(method.tags), preset=args.preset or method.default_preset,
        modality=modality.name, card_template=modality.card_template, pooling=model.feature_pooling,
        **modality.card_tags(config),
        dataset=dataset.name, dataset_name=dataset.name, train_split=dataset.train_split,
        num_train_images=num_examples, model_name=out_dir.resolve().name,
        architecture=type(encoder).__name__,
        global_step=trainer.state.global_step,
        epochs=trainer.state.global_step * effective_batch / max(num_examples, 1) if num_examples else None,
        effective_batch_size=effective_batch, learning_rate=targs.learning_rate,
        lr_scheduler_type=str(getattr(targs.lr_scheduler_type, "value", targs.lr_scheduler_type)),
        warmup=targs.warmup_steps, weight_decay=targs.weight_decay,
        hyperparameters=", ".join(f"{name}={portable_value(getattr(config, name))}" for name in own_fields),
        hardware=f"{world} x {device}" + (", bf16" if targs.bf16 else "") + data_loading(trainer),
        train_minutes=train_minutes,
        final_loss=losses[-1] if losses else None, command=command,
        base_model=start.checkpoint if start.checkpoint and not os.path.exists(start.checkpoint) else None,
        **modality.card_fields(model, config, dataset, start),
    )


def data_loading(trainer: Trainer) -> str:
    """How the batches were made, for the card's hardware line: DataLoader workers, and where the augmentation ran."""
    workers = trainer.args.dataloader_num_workers
    text = f", {workers} DataLoader worker{'s' if workers != 1 else ''} per process" if workers else ""
    return text + (", augmentation on the training device" if trainer.data_collator.on_device else "")


def _innermost_message(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
