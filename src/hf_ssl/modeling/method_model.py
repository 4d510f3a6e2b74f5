"""The method contract: what every method's model provides, and the only things shared code calls on it.

A method is a `PreTrainedModel` whose `forward` returns a loss (`Trainer` optimises it). The training loop, its
callbacks, the export, the plots and the evaluation know nothing else about a method than this class:

- **what is published**: `exported_model()` is the model written at OUT's root in its native transformers class
  (a `ViTModel`, a `BertForMaskedLM`, a `CLIPModel`, ...); `export_extra_files` adds files next to it.
- **the start of training**: `load_pretrained_parts()` loads parts named in the config from other checkpoints (BEiT's
  visual tokenizer, a distillation teacher); `load_encoder_weights(checkpoint)` starts from `--backbone CHECKPOINT`.
- **one per-optimizer-step hook**: `on_optimizer_step(step, progress)`, for EMA teachers, queues, centres,
  temperature clamps, codebook updates. The position in training (`num_optimizer_steps`, `progress`) is kept here,
  once, in buffers: checkpoints carry it, so a resumed run continues every schedule where it stopped.
- **what is logged**: `last_loss_terms` (the parts of a composite loss) and `last_embeddings` (the collapse monitor's
  input), set by `forward`.
- **the optimiser**: `no_weight_decay()` names parameters kept out of weight decay (a learned temperature);
  `optimizer_override(args)` names the optimizer a method must train with instead of `--optim` (word2vec's sparse
  embedding gradients need a lazy Adam: `hf_ssl.nn.lazy_adam.LazyAdam`), None for all others.
- **the card's plot**: `preview(pixel_values, generator)` shows what the model makes of a few images (MAE's and
  SimMIM's reconstructions); None for methods without one.
- **features**: `feature_pooling` says how one vector is read from a token backbone's output (ViT): the mean of the
  patch tokens or the [CLS] token. The method trains with it; OUT records it, and the evaluation, the plots and the
  card's loading code use it, so a representation is judged as it was learned.

A method with nothing to do at one of these points implements nothing there. This file imports only torch and
transformers: it is part of the code `OUT/ssl` carries (`hub.remote_code`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, TrainingArguments

SSL_SUBDIR = "ssl"  # OUT's folder of the full pretraining model (this class), next to the exported model at its root
TRAINING_POSITION = ("num_optimizer_steps", "progress")  # the buffers of the position in training, every method's


@dataclass
class ImagePreview:
    """What a model makes of a few images, for the card's reconstruction plot. Images are (B, C, H, W) in the model's
    input normalisation.

    reconstruction: the model's prediction of the whole image.
    hidden: (B, 1, H, W) bool, True where the model did not see the pixel (masked image modelling, inpainting): blank
        in the plot's input row; the plot's reconstruction shows the prediction there and the original elsewhere.
    model_input: what the model saw, when it is not the image with its hidden pixels blanked (colorization: the
        lightness channel; rotation: the rotated image); shown as the input row.
    row_labels: the names of the plot's three rows (original, input, prediction).
    """

    reconstruction: torch.Tensor
    hidden: torch.Tensor | None = None
    model_input: torch.Tensor | None = None
    row_labels: tuple[str, str, str] = ("original", "masked", "reconstruction")


class MethodModel(PreTrainedModel):
    """Base class of every method's model; see the module docstring for the contract."""

    # Trainer must not pass num_items_in_batch: every method's loss is already a mean (or sum) over its own units.
    accepts_loss_kwargs = False
    # "mean" (of the patch tokens) or "cls": see the module docstring. Masked image models train every patch token
    # and none of them the [CLS] token; joint-embedding methods set their own.
    feature_pooling: str = "mean"

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        # The position in training of the optimizer step whose forward passes come next: steps taken, and
        # progress = steps taken / total steps in [0, 1]. Buffers, so that checkpoints and OUT/ssl carry them.
        self.register_buffer("num_optimizer_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("progress", torch.zeros(()))
        # Set by forward, read by the logging callbacks after each logged step (from the last micro-batch):
        # detached scalars of a composite loss, and a detached (N, D) batch of embeddings for the collapse monitor.
        self.last_loss_terms: dict[str, torch.Tensor] = {}
        self.last_embeddings: torch.Tensor | None = None

    # --- what is published -----------------------------------------------------------------------------------

    def exported_model(self) -> PreTrainedModel:
        """The model written at OUT's root, in its native transformers class, and evaluated after training."""
        raise NotImplementedError(f"{type(self).__name__} must say which model it publishes (exported_model)")

    def export_extra_files(self, folder: str | os.PathLike, processor: Any) -> None:
        """Write files next to the exported model (word2vec: `vectors.txt`). Default: none."""

    # --- the start of training -------------------------------------------------------------------------------

    def load_pretrained_parts(self) -> None:
        """Load parts the config names from other checkpoints (BEiT's visual tokenizer, a distillation teacher).
        `hf-ssl pretrain` calls it once on a fresh model; `from_pretrained` does not: the saved model holds them."""

    def load_encoder_weights(self, checkpoint: str) -> None:
        """Start from a checkpoint's weights (`--backbone PATH_OR_HUB_ID`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from a checkpoint")

    # --- once per optimizer step -----------------------------------------------------------------------------

    @torch.no_grad()
    def optimizer_step_done(self, step: int, progress: float) -> None:
        """Called by the training loop after every optimizer step (not after each gradient-accumulation micro-batch)
        with `step` = optimizer steps taken so far (1 after the first) and `progress` = step / total steps. Runs the
        method's hook, then records the new position. Not meant to be overridden: override `on_optimizer_step`."""
        self.on_optimizer_step(step, progress)
        self.num_optimizer_steps.fill_(step)
        self.progress.fill_(progress)

    def on_optimizer_step(self, step: int, progress: float) -> None:
        """The method's per-step side effects, on the updated weights (no gradient is recorded). While it runs,
        `self.num_optimizer_steps` and `self.progress` still hold the position of the step just taken; `step` and
        `progress` are the position of the next one. Default: nothing."""

    # --- the optimiser and the card --------------------------------------------------------------------------

    def no_weight_decay(self) -> set[str]:
        """Names of parameters kept out of weight decay, on top of Trainer's own exclusions (biases, norms)."""
        return set()

    def optimizer_override(self, args: TrainingArguments) -> tuple[type[torch.optim.Optimizer], dict[str, Any]] | None:
        """The optimizer class and its keyword arguments (learning rate included; not the parameters) that this
        model must be trained with in place of Trainer's `--optim`, when its gradients are of a kind the usual
        optimizers do not take (sparse ones). Trainer still builds the parameter groups (weight decay) and the
        learning-rate schedule. Default None: `--optim`."""
        return None

    def preview(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> ImagePreview | None:
        """What the model makes of `pixel_values` (B, C, H, W, normalised), for the card's plot; random choices (masks)
        come from the CPU `generator`. None: the method has no such plot."""
        return None


__all__ = ["SSL_SUBDIR", "TRAINING_POSITION", "ImagePreview", "MethodModel"]
