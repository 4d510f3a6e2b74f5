"""SimMIM (Xie et al., CVPR 2022): regress the pixels of randomly masked patches with a one-layer head."""

from ...data.collators import crop_flip_collator
from ...registry import Method, Preset
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_simmim import SimMIMConfig
from .modeling_simmim import SimMIMForPreTraining, SimMIMOutput


# SimMIM's recipe (paper Sec. 4, reference configs): AdamW, betas (0.9, 0.999), weight decay 0.05, lr 1e-4 *
# batch / 512 for ViT-B (4e-4 at batch 2048), 10 warmup epochs, 800 epochs (the reference decays the ViT lr in
# steps; a cosine here). The mask patch is twice the ViT patch, as 32 px is for ViT-B/16; `small` keeps MAE's small
# encoder and lr for a like-for-like comparison.
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.999, weight_decay=0.05, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ViT 32-wide x2, 16 px, patch 4, 8 px mask patches: for tests",
        config=dict(backbone="vit-test", backbone_overrides=dict(image_size=16, patch_size=4), mask_patch_size=8),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ViT-Ti width (192) x6, 32 px, patch 4 (MAE's small encoder), 8 px mask patches at 0.6"
        f", {fifteen_minutes(1.8, 1.096)}",
        config=dict(backbone="vit-tiny", backbone_overrides=dict(num_hidden_layers=6, image_size=32, patch_size=4),
                    mask_patch_size=8),
        # 1.8 epochs = 845 steps: 12.8 minutes at the 1.096 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=1.5e-3, per_device_train_batch_size=128, **fifteen_minute_schedule(1.8),
                      warmup_steps=0.05),
    ),
    "base": Preset(
        "the paper's ViT-B/16 at 224 px, 32 px mask patches at 0.6 (batch 2048, 800 epochs, 10 warmup)",
        config=dict(backbone="vit-base", backbone_overrides=dict(image_size=224, patch_size=16)),
        training=dict(_OPTIM, learning_rate=1e-4 * 2048 / 512, per_device_train_batch_size=64, num_train_epochs=800,
                      warmup_steps=10 / 800),
    ),
}

METHOD = Method(
    name="simmim",
    summary="SimMIM: regress the pixels of 60% randomly masked 32 px squares (L1) with a one-layer head; ViT or Swin",
    paper="Xie et al., SimMIM: A Simple Framework for Masked Image Modeling, CVPR 2022 (arXiv:2111.09886)",
    config_class=SimMIMConfig,
    model_class=SimMIMForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=crop_flip_collator,  # the reference's SimMIMTransform: crop (0.67-1) + flip; masks drawn in forward
    tags=("masked-image-modeling", "simmim"),
    display_name="SimMIM",
    limitations=(
        "SimMIM's encoder is meant to be fine-tuned (the paper reports fine-tuning results): like other masked-image-"
        "modelling encoders, its frozen features are weaker under kNN and linear probing than contrastive ones."
    ),
)

__all__ = ["METHOD", "SimMIMConfig", "SimMIMForPreTraining", "SimMIMOutput"]
