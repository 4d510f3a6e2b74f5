"""Barlow Twins (Zbontar, Jing, Misra, LeCun, Deny, ICML 2021)."""

from ...data.collators import byol_views_collator
from ...registry import Method, Preset
from ..presets import (
    CIFAR_STEM_NOT_DONE, RESNET_STEM_AT_32_PX, SMALL_RESNET_HALF, fifteen_minute_schedule, fifteen_minutes,
    tiny_preset, trained_with_adamw_not_lars,
)
from .configuration_barlow_twins import BarlowTwinsConfig
from .modeling_barlow_twins import BarlowTwinsForPreTraining, BarlowTwinsOutput


# The paper trains with LARS (lr 0.2 for weights and 0.0048 for biases and BatchNorm, weight decay 1.5e-6,
# 10 warmup epochs, cosine decay, batch 2048, 1000 epochs). transformers has no LARS, so every preset uses
# AdamW with a cosine schedule. No AdamW recipe for Barlow Twins is published by its authors; the presets use
# the one the VICReg authors published for their closely related loss (VICRegL, github.com/facebookresearch/
# VICRegL: lr = 5e-4 x batch / 256, weight decay 0.05, 10 warmup epochs). Adam's update does not depend on the
# scale of the loss, so the different magnitudes of the two losses (and the paper's later-removed loss scale
# 0.024) do not matter. lambda_offdiag follows the projector width D (see BarlowTwinsConfig): 1 / D for the tiny
# preset's D = 32, 5e-3 from D = 1024 up.
_OPTIM = dict(weight_decay=0.05, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        tiny_preset("16 px, projector 32-32-32 (lambda_offdiag 1/32)"),
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    projection_hidden_dim=32, projection_dim=32, lambda_offdiag=1 / 32),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET_HALF}, projector 1024-1024-1024 (4x the 256 features, as the paper's 8192 is 4x "
        f"ResNet-50's 2048), lambda_offdiag 5e-3, {fifteen_minutes(8)}",
        config=dict(backbone="resnet18-half", backbone_overrides=dict(image_size=32),
                    projection_hidden_dim=1024, projection_dim=1024, lambda_offdiag=5e-3),
        # 8 epochs = 1,875 steps, 12.5 minutes at the 2.5 steps/s measured here (a 2048-wide projector: 1.61)
        training=dict(_OPTIM, learning_rate=5e-4, per_device_train_batch_size=256, warmup_steps=0.1,
                      **fifteen_minute_schedule(8)),
        # model step fp32 -> bf16 here: 285 -> 197 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "the paper's ResNet-50 at 224 px, projector 8192-8192-8192, lambda_offdiag 5e-3, batch 2048 (8 x 256), "
        "1000 epochs",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224),
                    projection_hidden_dim=8192, projection_dim=8192, lambda_offdiag=5e-3),
        training=dict(_OPTIM, learning_rate=5e-4 * 2048 / 256, per_device_train_batch_size=256,
                      num_train_epochs=1000, warmup_steps=0.01),
    ),
}

METHOD = Method(
    name="barlow_twins",
    summary=("Barlow Twins: make the cross-correlation matrix of the projections of two views of a batch close "
             "to the identity (invariant, non-redundant dimensions); no negatives"),
    paper=("Zbontar, Jing, Misra, LeCun, Deny, Barlow Twins: Self-Supervised Learning via Redundancy Reduction, "
           "ICML 2021 (arXiv:2103.03230)"),
    config_class=BarlowTwinsConfig,
    model_class=BarlowTwinsForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    # BYOL's two asymmetric view pipelines, which the paper follows (Sec. 3, "Image augmentations")
    make_collator=byol_views_collator,
    tags=("non-contrastive", "information-maximization"),
    display_name="Barlow Twins",
    limitations=(
        trained_with_adamw_not_lars("lr 0.2 for weights, 0.0048 for biases and BatchNorm, weight decay 1.5e-6",
                                    "lr 5e-4 x batch / 256, weight decay 0.05, the VICRegL authors' AdamW recipe for "
                                    "the closely related VICReg loss; no AdamW recipe for Barlow Twins is published")
        + ". lambda_offdiag = 5e-3 was tuned for an 8192-wide projector; the loss "
        "balance depends on the width and the authors give no rule for smaller ones (1 / D is used for the tiny "
        "preset). The cross-correlation uses the global batch, but the backbone's and projector's BatchNorm "
        "normalise over each process's own 2 x per-device batch (the paper synchronises them). "
        f"{RESNET_STEM_AT_32_PX}; {CIFAR_STEM_NOT_DONE}."
    ),
)

__all__ = ["BarlowTwinsConfig", "BarlowTwinsForPreTraining", "BarlowTwinsOutput", "METHOD"]
