"""SimSiam (Chen & He, CVPR 2021)."""

from ...data.collators import simclr_views_collator
from ...registry import Method, Preset
from ..presets import (
    PER_PROCESS_BATCH_NORM, RESNET_STEM_AT_32_PX, SMALL_RESNET_HALF, fifteen_minute_schedule, fifteen_minutes,
    tiny_preset,
)
from .configuration_simsiam import SimSiamConfig
from .modeling_simsiam import SimSiamForPreTraining, SimSiamOutput


# The paper trains with SGD (lr 0.05 x batch / 256, momentum 0.9, weight decay 1e-4, cosine decay; the predictor's
# lr is not decayed), batch 512, 100 epochs. Trainer has one optimizer and one schedule, so every preset uses
# AdamW with a cosine schedule for every parameter, predictor included. Learning rate: 1e-3 at batch 256, the one
# the SimCLR and BYOL presets of this package use on the same backbone and data (so the methods compare); `base`
# scales it by sqrt(batch / 256), the usual scaling of Adam-type rates. Weight decay 0.05: AdamW shrinks the
# weights by lr x wd per step, SGD with momentum 0.9 by lr x wd / (1 - 0.9) in the steady state, so the paper's
# 0.05 x 1e-4 x 10 = 5e-5 per step at batch 256 needs wd = 5e-5 / 1e-3 = 0.05 at AdamW lr 1e-3 (weight decay
# matters for non-contrastive methods: Tian, Chen, Ganguli, ICML 2021). A 5% linear warm-up steadies Adam's first
# steps (the paper has none at batch 512).
_OPTIM = dict(weight_decay=0.05, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        tiny_preset("16 px, projector 16 -> 32 -> 32 -> 16, predictor 16 -> 8 -> 16"),
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=8),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET_HALF}, projector 256 -> 1024 -> 1024 -> 1024, predictor 1024 -> 256 -> 1024 (the paper's "
        f"4x bottleneck), {fifteen_minutes(9)}",
        config=dict(backbone="resnet18-half", backbone_overrides=dict(image_size=32),
                    projection_hidden_dim=1024, projection_dim=1024, prediction_hidden_dim=256),
        # 9 epochs = 2,110 steps, 13 minutes at the 2.7 steps/s measured here
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, warmup_steps=0.05,
                      **fifteen_minute_schedule(9)),
        # model step fp32 -> bf16 here: 285 -> 201 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "the paper's ResNet-50 at 224 px, projector 2048 x 3 layers, predictor 2048 -> 512 -> 2048, batch 512 "
        "(2 x 256), 100 epochs",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224),
                    projection_hidden_dim=2048, projection_dim=2048, prediction_hidden_dim=512),
        training=dict(_OPTIM, learning_rate=1.4e-3, per_device_train_batch_size=256, num_train_epochs=100,
                      warmup_steps=0.05),
    ),
}

METHOD = Method(
    name="simsiam",
    summary="SimSiam: one network predicts its own projection of another view, with a stop-gradient and no negatives",
    paper="Chen, He, Exploring Simple Siamese Representation Learning, CVPR 2021 (arXiv:2011.10566)",
    config_class=SimSiamConfig,
    model_class=SimSiamForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    # two views through the same pipeline, MoCo v2's (the paper's Sec. 4 and reference code, SimSiamConfig's
    # defaults): crop scale 0.2-1 + flip, colour jitter 0.4/0.4/0.4/0.1 (p = 0.8), grayscale (p = 0.2), Gaussian
    # blur (sigma 0.1-2, p = 0.5)
    make_collator=simclr_views_collator,
    tags=("non-contrastive",),
    display_name="SimSiam",
    limitations=(
        "Trained with AdamW (weight decay 0.05, chosen to match the per-step shrinkage of the paper's SGD with "
        "momentum 0.9 and weight decay 1e-4) and one cosine schedule for every parameter, not the paper's SGD "
        "(lr 0.05 x batch / 256) with a fixed, non-decayed learning rate for the predictor: transformers' Trainer "
        "has one learning rate and schedule unless given a custom optimizer. The paper's Table 1 reports 67.7% "
        "ImageNet linear accuracy with a decayed predictor lr against 68.1% with a fixed one (100 epochs). The "
        f"AdamW learning rates were not tuned here. {PER_PROCESS_BATCH_NORM} (both views together), not over "
        "the global batch per view as the paper's synchronised BN does. The paper's CIFAR-10 variant (Appendix D) "
        f"uses a 2-layer projector and a 3x3 stride-1 stem; here the projector keeps 3 layers. {RESNET_STEM_AT_32_PX}."
    ),
)

__all__ = ["SimSiamConfig", "SimSiamForPreTraining", "SimSiamOutput", "METHOD"]
