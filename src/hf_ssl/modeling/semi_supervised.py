"""What every semi-supervised method shares: the config of its data (labelled subset, unlabelled ratio, weak views), a
native image classifier as the model itself, and the interface the data pipeline, the monitor and the export use.

Semi-supervised methods (`supervised`, `pseudo_label`, `entropy_minimization`, `mean_teacher`, `fixmatch`,
`self_training`, `data_distillation`, `noisy_student`) learn a classifier from a few labelled images and many
unlabelled ones. Unlike the self-supervised methods they publish the classifier, not an encoder.

The interface (what a method's folder relies on and implements)
---------------------------------------------------------------
Config (`SemiSupervisedConfig`, derive the method's config from it; `@strict`):
    labels_per_class / labeled_fraction / subset_seed  which training examples keep their label
                                                       (`hf_ssl.data.labeled_subset`); read by the modality.
    unlabeled_ratio (mu)        unlabelled images per labelled one in a batch (B labelled + mu * B unlabelled).
    unlabeled_views (V)         weak views of each unlabelled image the collator makes (Mean Teacher: 2).
    horizontal_flip, max_translation   the weak augmentation (`data.transforms.flip_and_shift`).
    classifier_dropout          dropout on the classification head's input while training (Noisy Student).
    num_labels, id2label, label2id     PretrainedConfig's own; the modality sets them from the dataset's class names
                                       before the model is built.
    num_unlabeled               the unlabelled set's size, set by the modality from the data likewise.

Batch (`data.collators.SemiSupervisedCollator`), the keyword arguments of `forward`:
    labeled_pixels (B, C, H, W) float, normalised, weakly augmented; labels (B,) int64 (never -1).
    unlabeled_pixels (B * mu, C, H, W), or (V, B * mu, C, H, W) when V > 1 (`unlabeled_views(...)` gives the list);
    unlabeled_index (B * mu,) int64, each unlabelled image's position 0..U-1 in the unlabelled set. Both absent when
    mu = 0 or every example is labelled: a method's forward must then train on the labels alone.

Model (`SemiSupervisedModel`, derive the method's model from it):
    self.classifier             `AutoModelForImageClassification.from_config(backbone config + the labels)`: a
                                native `ResNetForImageClassification` / `ViTForImageClassification` / ...; what
                                `exported_model()` returns and OUT's root holds (no weight copying). A method with a
                                weight average to publish (FixMatch's EMA, Mean Teacher's teacher) overrides
                                `exported_model()`.
    logits(pixels)              (N, num_labels) logits of `self.classifier`.
    joint_logits(*batches)      one classifier call on the concatenated batches, split back (BatchNorm statistics
                                over labelled and unlabelled images together, as FixMatch / USB compute them).
    supervised_loss(logits, labels)    the cross-entropy on the labelled batch.
    forward(labeled_pixels, labels, unlabeled_pixels=None, unlabeled_index=None) -> SemiSupervisedOutput(loss,
                                logits of the labelled batch): implemented by each method.
    last_loss_terms             set through `record_loss_terms(supervised, unlabeled, mask_rate)`: the logged parts.
    last_pseudo_labels          `PseudoLabels(unlabeled_index, labels, weights)` of the last forward, set through
                                `record_pseudo_labels(...)` by methods that pseudo-label (weight 0 = not used);
                                None otherwise. The modality's monitor compares them with the hidden labels, which
                                the model never sees.
    load_encoder_weights(checkpoint)   `--backbone CHECKPOINT`: an hf-ssl OUT (its encoder) or any transformers
                                checkpoint's weights into `self.classifier.base_model`; the head stays new.
    The position in training (`self.progress` in [0, 1], `self.num_optimizer_steps`) drives the ramp-ups; the
    per-optimizer-step hook `on_optimizer_step(step, progress)` updates EMA teachers (`MethodModel`).

This file imports only torch, transformers and model code: `OUT/ssl` carries it (`hub.remote_code`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from .image_method import ImageMethodConfig, ImageMethodModel

__all__ = ["PseudoLabels", "SemiSupervisedConfig", "SemiSupervisedModel", "SemiSupervisedOutput",
           "build_image_classifier"]


@strict
class SemiSupervisedConfig(ImageMethodConfig):
    r"""
    backbone_config (`PretrainedConfig`): the classifier's backbone, any transformers vision config that
        `AutoModelForImageClassification` knows (ResNet, ViT, ConvNeXt, ...). Exported as its native
        `*ForImageClassification` class with the dataset's labels.
    labels_per_class (`int`, *optional*): keep K labels per class of the training split (stratified, seeded by
        `subset_seed`) and hide the rest (USB's CIFAR-10 settings: 4, 25, 400). None with `labeled_fraction` None: every
        example that has a label keeps it (a partly empty label column is used as it is).
    labeled_fraction (`float`, *optional*): keep round(F * n_c) labels of each class c (at least one) instead.
    subset_seed (`int`, defaults to 0): seed of the labelled subset's draw, independent of the training seed.
    unlabeled_ratio (`int`, defaults to 7): mu, unlabelled images per labelled image in a batch (FixMatch and USB:
        7). 0 loads no unlabelled data (the `supervised` baseline).
    unlabeled_views (`int`, defaults to 1): weak views per unlabelled image (Mean Teacher: 2, one per network).
    horizontal_flip (`bool`, defaults to `True`): the weak augmentation's random horizontal flip (FixMatch's
        "flip-and-shift"; turn it off for data where a flip changes the class, such as digits).
    max_translation (`float`, defaults to 0.125): the weak augmentation's random translation, up to this share of
        the side (FixMatch: 12.5%), with reflect padding.
    classifier_dropout (`float`, defaults to 0.0): dropout on the classification head's input during training
        (Noisy Student's model noise: 0.5 in Xie et al. 2020); 0 adds none.
    num_unlabeled (`int`, *optional*): U, the size of the unlabelled set; like `num_labels`, set by the modality from
        the data before the model is built (None for a model built outside `hf-ssl pretrain`). Sizes the buffers
        that hold a value per unlabelled example (`top_k` selection's), so that checkpoints carry them.
    """

    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    labels_per_class: int | None = None
    labeled_fraction: float | None = None
    subset_seed: int = 0
    unlabeled_ratio: int = 7
    unlabeled_views: int = 1
    horizontal_flip: bool = True
    max_translation: float = 0.125
    classifier_dropout: float = 0.0
    num_unlabeled: int | None = None

    def validate_labeled_subset(self):
        if self.labels_per_class is not None and self.labeled_fraction is not None:
            raise ValueError("give either labels_per_class or labeled_fraction, not both (the `tiny` preset sets "
                             "labels_per_class=4: use --labels_per_class with it, or another preset)")
        if self.labels_per_class is not None and self.labels_per_class < 1:
            raise ValueError(f"labels_per_class must be at least 1, got {self.labels_per_class}")
        if self.labeled_fraction is not None and not 0.0 < self.labeled_fraction <= 1.0:
            raise ValueError(f"labeled_fraction must be in (0, 1], got {self.labeled_fraction}")

    def validate_unlabeled_batch(self):
        if self.unlabeled_ratio < 0:
            raise ValueError(f"unlabeled_ratio must be >= 0, got {self.unlabeled_ratio}")
        if self.unlabeled_views < 1:
            raise ValueError(f"unlabeled_views must be at least 1, got {self.unlabeled_views}")

    def validate_weak_augmentation(self):
        if not 0.0 <= self.max_translation < 0.5:
            raise ValueError(f"max_translation must be in [0, 0.5), got {self.max_translation}")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}")


@dataclass
class PseudoLabels:
    """The pseudo-labels a forward pass used, one row per unlabelled image of the batch (detached):
    unlabeled_index (M,): positions in the unlabelled set (the batch's `unlabeled_index`); labels (M,): the hard
    pseudo-labels; weights (M,): their weight in the loss, 0 for an image that was not used (below the threshold)."""

    unlabeled_index: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor


@dataclass
class SemiSupervisedOutput(ModelOutput):
    """
    loss: the method's training loss (supervised + weighted unlabelled terms).
    logits: (B, num_labels) logits of the labelled batch.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


def build_image_classifier(config: SemiSupervisedConfig) -> PreTrainedModel:
    """A randomly initialised `AutoModelForImageClassification` of `config.backbone_config` with `config`'s labels."""
    backbone_config: PretrainedConfig = copy.deepcopy(config.backbone_config)
    backbone_config.id2label = dict(config.id2label)
    backbone_config.label2id = dict(config.label2id) if config.label2id else {
        name: i for i, name in config.id2label.items()}
    backbone_config.architectures = None  # save_pretrained writes the classifier's own class
    return AutoModelForImageClassification.from_config(backbone_config)


class SemiSupervisedModel(ImageMethodModel):
    """Base of the semi-supervised methods' models; see the module docstring."""

    config_class = SemiSupervisedConfig
    base_model_prefix = "semi_supervised"
    main_input_name = "labeled_pixels"
    # ViTForImageClassification classifies the [CLS] token: the representation it learns (recorded in OUT and used
    # by the card's embedding plot). Backbones without a [CLS] token ignore it.
    feature_pooling = "cls"

    def __init__(self, config: SemiSupervisedConfig):
        super().__init__(config)
        self.classifier = build_image_classifier(config)
        if config.classifier_dropout > 0:
            self._add_classifier_dropout(config.classifier_dropout)
        self.last_pseudo_labels: PseudoLabels | None = None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Every weight belongs to the native classifier, which its own class initialises (a nested PreTrainedModel).
        pass

    def _add_classifier_dropout(self, probability: float) -> None:
        """Dropout on the input of the classification head (`self.classifier.classifier`, the head's name in
        transformers' ResNet, ViT, ConvNeXt, Swin classifiers) while training, as a forward pre-hook: the exported
        native class has no such layer, and needs none (dropout is the identity at inference)."""
        head = self.classifier.get_submodule("classifier")

        def dropout_input(module: nn.Module, args: tuple) -> tuple:
            return (F.dropout(args[0], probability, training=module.training), *args[1:])

        head.register_forward_pre_hook(dropout_input)

    # --- the contract --------------------------------------------------------------------------------------

    def get_encoder(self) -> PreTrainedModel:
        """The classifier's backbone (`ResNetModel`, `ViTModel`, ...): where `--backbone CHECKPOINT` loads."""
        return self.classifier.base_model

    def exported_model(self) -> PreTrainedModel:
        """The native classifier, published at OUT's root."""
        return self.classifier

    # --- what methods use ----------------------------------------------------------------------------------

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) normalised images -> (N, num_labels) logits."""
        return self.classifier(pixel_values=pixel_values).logits

    def joint_logits(self, *pixel_batches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The logits of several batches from one classifier call on their concatenation, split back in order:
        BatchNorm normalises over labelled and unlabelled images together (FixMatch's reference and USB do so;
        separate calls would give each its own batch statistics)."""
        sizes = [batch.shape[0] for batch in pixel_batches]
        return tuple(self.logits(torch.cat(pixel_batches)).split(sizes))

    def unlabeled_views(self, unlabeled_pixels: torch.Tensor) -> list[torch.Tensor]:
        """The weak views of the unlabelled batch as a list of (B * mu, C, H, W) tensors (`unlabeled_views` of them)."""
        if self.config.unlabeled_views == 1:
            return [unlabeled_pixels]
        return list(unlabeled_pixels.unbind(0))

    @staticmethod
    def supervised_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the labelled batch, in float32."""
        return F.cross_entropy(logits.float(), labels)

    def labels_only(self, labeled_pixels: torch.Tensor, labels: torch.Tensor,
                    **logged: torch.Tensor | float) -> SemiSupervisedOutput:
        """The step of a batch without unlabelled images (every example labelled, mu = 0, or a phase that uses the
        labels alone): the supervised cross-entropy, logged, and no pseudo-labels."""
        logits = self.logits(labeled_pixels)
        loss = self.supervised_loss(logits, labels)
        self.record_loss_terms(loss, **logged)
        self.last_pseudo_labels = None
        return SemiSupervisedOutput(loss=loss, logits=logits)

    def record_loss_terms(self, supervised: torch.Tensor, unlabeled: torch.Tensor | None = None,
                          mask_rate: torch.Tensor | float | None = None, **extra: torch.Tensor | float) -> None:
        """What the logs show next to `loss`: `supervised_loss`, `unlabeled_loss` (unweighted), `mask_rate` (the
        share of unlabelled images used) and any method-specific scalar (the current unlabelled weight)."""
        terms = {"supervised_loss": supervised, "unlabeled_loss": unlabeled, "mask_rate": mask_rate, **extra}
        self.last_loss_terms = {name: torch.as_tensor(value).detach().float()
                                for name, value in terms.items() if value is not None}

    def record_pseudo_labels(self, unlabeled_index: torch.Tensor | None, labels: torch.Tensor,
                             weights: torch.Tensor) -> None:
        """Keep the pseudo-labels of this forward (detached) for the modality's monitor."""
        if unlabeled_index is None:
            self.last_pseudo_labels = None
            return
        self.last_pseudo_labels = PseudoLabels(unlabeled_index.detach(), labels.detach(), weights.detach().float())

    def forward(self, labeled_pixels: torch.Tensor, labels: torch.Tensor, unlabeled_pixels: torch.Tensor | None = None,
                unlabeled_index: torch.Tensor | None = None, **kwargs) -> SemiSupervisedOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement its training loss (forward)")
