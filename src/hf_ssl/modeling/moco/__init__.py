"""MoCo v2 (Chen, Fan, Girshick, He 2020) and MoCo v3 (Chen, Xie, He, ICCV 2021): one method, `--version 2|3`."""

from ...data.collators import MultiViewCollator, byol_views_collator
from ...data.transforms import simclr_augmentation
from ...registry import Method, Preset
from ..presets import RESNET_STEM_AT_32_PX, SMALL_RESNET, fifteen_minute_schedule, fifteen_minutes, tiny_preset
from .configuration_moco import MoCoConfig
from .modeling_moco import MoCoForPreTraining, MoCoOutput

# MoCo v2's "aug+" (Sec. 2 and the reference `main_moco.py --aug-plus`): SimCLR's pipeline with colour jitter
# (0.4, 0.4, 0.4, 0.1), i.e. strength 0.5, p = 0.8, grayscale p = 0.2, Gaussian blur p = 0.5.
MOCO_V2_JITTER_STRENGTH = 0.5
MOCO_V2_BLUR_PROBABILITY = 0.5


def make_collator(config: MoCoConfig) -> MultiViewCollator:
    """Two views of every image. v2: the same "aug+" pipeline twice (crop scale `crop_min_scale`-1). v3: BYOL's two
    asymmetric pipelines (blur p = 1.0 / 0.1, solarisation p = 0 / 0.2; crop scale `crop_min_scale`-1), as
    the reference's `augmentation1` / `augmentation2`. Each view is a fresh random draw per image."""
    if config.version != 2:
        return byol_views_collator(config)
    augment = simclr_augmentation(config.image_size, min_scale=config.crop_min_scale,
                                  jitter_strength=MOCO_V2_JITTER_STRENGTH, blur_probability=MOCO_V2_BLUR_PROBABILITY)
    return MultiViewCollator(config.image_mean, config.image_std, [augment, augment])


# The presets set only what applies to both versions (backbone, head sizes, queue size, which v3 ignores), so
# `--version 2` works with each of them; temperature, momentum schedule, projector depth and crop scale resolve
# per version (and, for v3, per backbone) in MoCoConfig.
#
# Optimiser: MoCo v2 uses SGD (lr 0.03 at batch 256, weight decay 1e-4, momentum 0.9, cosine); MoCo v3 uses
# AdamW for ViT (lr = 1.5e-4 x batch / 256, weight decay 0.1, 40 warm-up epochs of 300, cosine) and LARS for
# ResNet (lr 0.6 x batch / 256 at 100 epochs, weight decay 1e-6). transformers has AdamW, not LARS: every preset
# uses AdamW with a cosine schedule. `base` is v3's ViT-B/16 recipe as published (it is an AdamW recipe).
# `small` (ResNet-18) uses lr 1e-3 and weight decay 1e-6: Adam's standard step size, the value this project's
# SimCLR preset uses for the same backbone, data and batch (so the methods compare like for like), above v3's
# ViT rule (1.5e-4 at batch 256), which is tuned for 300 epochs; not tuned here for MoCo.
PRESETS = {
    "tiny": Preset(
        tiny_preset("16 px, projection 32 -> 16 (v3 predictor 32; v2 queue of 64)"),
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=32, queue_size=64),
        training=dict(learning_rate=1e-3, weight_decay=1e-6, lr_scheduler_type="cosine",
                      per_device_train_batch_size=32, num_train_epochs=1, warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET}; v3: projector 512 -> 512 -> 128 and predictor "
        "128 -> 512 -> 128 (the paper: 2048 -> 4096 -> 256 and 4096; hidden width = the 512-d features, as "
        "SimCLR's small preset); v2: head 512 -> 512 -> 128 and a queue of 4096 (as the MoCo CIFAR-10 demo: 65536 would exceed Fashion-MNIST's 60k images); momentum "
        "0.99 (the v3 start, and the CIFAR demo's constant for v2's shorter runs)"
        f", {fifteen_minutes(2.3, 0.681)}",
        config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32),
                    projection_hidden_dim=512, projection_dim=128, prediction_hidden_dim=512, queue_size=4096,
                    momentum=0.99),
        # 2.3 epochs = 541 steps: 13.2 minutes at the 0.681 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(learning_rate=1e-3, weight_decay=1e-6, lr_scheduler_type="cosine",
                      per_device_train_batch_size=256, **fifteen_minute_schedule(2.3), warmup_steps=0.05),
        # model step fp32 -> bf16 here: 1,116 -> 818 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "MoCo v3's ViT-B/16 at 224 px: projector 3 x 4096 -> 256, predictor 4096, tau 0.2, momentum 0.99 -> 1, "
        "random patch projection; AdamW lr 1.5e-4 x 4096 / 256, weight decay 0.1, batch 4096 (16 x 256), 300 "
        "epochs with 40 of warm-up. (With --version 2 the heads and queue take MoCo v2's paper values; its "
        "paper backbone is --backbone resnet50.)",
        config=dict(backbone="vit-base", backbone_overrides=dict(image_size=224, patch_size=16)),
        training=dict(learning_rate=1.5e-4 * 4096 / 256, weight_decay=0.1, lr_scheduler_type="cosine",
                      per_device_train_batch_size=256, num_train_epochs=300, warmup_steps=40 / 300),
    ),
}

METHOD = Method(
    name="moco",
    summary=("MoCo v2/v3: match each view's query to the momentum encoder's key of the other view against negative "
             "keys (v2: a queue of past keys; v3: the batch's keys, with a predictor)"),
    paper=("Chen, Fan, Girshick, He, Improved Baselines with Momentum Contrastive Learning, 2020 (arXiv:2003.04297); "
           "Chen, Xie, He, An Empirical Study of Training Self-Supervised Vision Transformers, ICCV 2021 "
           "(arXiv:2104.02057)"),
    config_class=MoCoConfig,
    model_class=MoCoForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=make_collator,
    tags=("contrastive", "momentum-encoder"),
    display_name="MoCo",
    limitations=(
        "Trained with AdamW and a cosine schedule: MoCo v3's ViT recipe is AdamW, but its ResNet recipe uses LARS and "
        "MoCo v2 uses SGD (lr 0.03 at batch 256, weight decay 1e-4), which these presets do not reproduce "
        "(transformers has no LARS). MoCo v2's shuffling BN is not implemented: the key encoder's BatchNorm "
        "normalises over each process's own batch, which lets the model use batch statistics to find the positive "
        "(the leak shuffling BN prevents, v1 Sec. 3.3); v3 instead relies on BatchNorm synchronised across devices "
        "in its heads, which here normalises over each process's local batch of one view. MoCo v3's ViT uses fixed "
        f"2-D sine-cosine position embeddings; transformers' ViT learns them. {RESNET_STEM_AT_32_PX}."
    ),
)

__all__ = ["MoCoConfig", "MoCoForPreTraining", "MoCoOutput", "METHOD", "PRESETS", "make_collator"]
