"""SimCLR (Chen et al., ICML 2020)."""

from ...data.collators import simclr_views_collator
from ...registry import Method, Preset
from ..presets import (
    PER_PROCESS_BATCH_NORM, RESNET_STEM_AT_32_PX, SMALL_RESNET_HALF, fifteen_minute_schedule, fifteen_minutes,
    tiny_preset, trained_with_adamw_not_lars,
)
from .configuration_simclr import SimCLRConfig
from .modeling_simclr import SimCLRForPreTraining, SimCLROutput


# The paper trains with LARS (lr = 0.3 * batch / 256, weight decay 1e-6, 10 warmup epochs, cosine decay,
# batch 4096). transformers has no LARS, so every preset uses AdamW with a cosine schedule: `tiny` is for
# tests; `small` trains a ResNet-18 on small images on a CPU; `base` is the paper's ResNet-50 at 224 px with
# its batch size and schedule length, with an AdamW learning rate (the LARS one would diverge with AdamW).
_OPTIM = dict(weight_decay=1e-6, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        tiny_preset("16 px, projection 32 -> 16"),
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    projection_hidden_dim=32, projection_dim=16),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET_HALF}, projection 512 -> 128, temperature 0.2, augmentation for small grayscale images "
        f"(crop scale 0.2-1, jitter strength 0.5, no blur), {fifteen_minutes(11)}",
        config=dict(backbone="resnet18-half", backbone_overrides=dict(image_size=32),
                    projection_hidden_dim=512, projection_dim=128,
                    # Small grayscale images (Fashion-MNIST, digits at 32 px), not ImageNet photographs: a crop of
                    # 8% of 32 px keeps a 9 px patch, too little of a garment to tell its class, so 20% (solo-learn's
                    # CIFAR setting); the blur's 3 px kernel erases the thin strokes that separate the classes;
                    # saturation and hue do nothing to gray images, which leaves brightness and contrast, halved
                    # (MoCo v2's strength). Temperature 0.2, the CIFAR value of solo-learn and MoCo v2.
                    temperature=0.2, crop_min_scale=0.2, jitter_strength=0.5, blur_probability=0.0),
        # 11 epochs = 2,585 steps, 14 minutes at the 3.0 steps/s measured here
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, warmup_steps=0.05,
                      **fifteen_minute_schedule(11)),
        # model step fp32 -> bf16 here: 237 -> 175 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "the paper's ResNet-50 at 224 px, projection 2048 -> 128, batch 4096 (16 x 256), 100 epochs",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224),
                    projection_hidden_dim=2048, projection_dim=128),
        training=dict(_OPTIM, learning_rate=1e-3 * 4096 / 256, per_device_train_batch_size=256,
                      num_train_epochs=100, warmup_steps=0.1),
    ),
}

METHOD = Method(
    name="simclr",
    summary="SimCLR: pull together the projections of two augmented views of an image, push apart all others (NT-Xent)",
    paper=("Chen, Kornblith, Norouzi, Hinton, A Simple Framework for Contrastive Learning of Visual "
           "Representations, ICML 2020 (arXiv:2002.05709)"),
    config_class=SimCLRConfig,
    model_class=SimCLRForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=simclr_views_collator,  # two views through the same pipeline (Appendix A)
    tags=("contrastive",),
    display_name="SimCLR",
    limitations=(
        f"{trained_with_adamw_not_lars('lr 0.3 x batch / 256 = 4.8 at batch 4096, weight decay 1e-6')}. SimCLR "
        "needs large batches for many negatives (the paper: 4096, with BatchNorm synchronised over all devices); "
        f"here {PER_PROCESS_BATCH_NORM}. {RESNET_STEM_AT_32_PX}; the paper's "
        "CIFAR-10 variant replaces it with a 3x3 stride-1 conv, not done here."
    ),
)

__all__ = ["SimCLRConfig", "SimCLRForPreTraining", "SimCLROutput", "METHOD"]
