"""SwAV (Caron et al., NeurIPS 2020)."""

from ...data.collators import multi_crop_collator
from ...registry import Method, Preset
from ..presets import (
    RESNET_STEM_AT_32_PX, SMALL_RESNET, fifteen_minute_schedule, fifteen_minutes, tiny_preset,
    trained_with_adamw_not_lars,
)
from .configuration_swav import SwAVConfig
from .modeling_swav import SwAVForPreTraining, SwAVOutput


# The paper trains with LARS (lr 4.8 at batch 4096 with a cosine decay to 0.0048, weight decay 1e-6, SGD
# momentum 0.9; 0.6 at batch 256), which transformers does not provide: every preset uses AdamW with a cosine
# schedule. Learning rate 1e-3 at batch 128-256 with weight decay 1e-6 and 10 % warm-up: the Adam recipe of
# Lightning Bolts' SwAV (`pl_bolts/models/self_supervised/swav/swav_module.py`: optimizer "adam", learning_rate
# 1e-3, weight_decay 1e-6, 10 of 100 warm-up epochs, for its CIFAR-10 / STL-10 runs), which is also the rate of
# the other joint-embedding presets of this package (so the methods compare). `base` scales it by
# sqrt(4096 / 256) = 4, the usual scaling of Adam-type rates with the batch (as the BYOL preset).
_OPTIM = dict(weight_decay=1e-6, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        tiny_preset("2 x 16 px + 2 x 8 px crops, projection 32 -> 16, 32 prototypes, prototypes frozen for 1 step"),
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    projection_hidden_dim=32, projection_dim=16, num_prototypes=32, num_local_crops=2,
                    local_crop_size=8, freeze_prototypes_steps=1),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET}, multi-crop 2 x 32 px + 4 x 16 px, projection "
        "512 -> 512 -> 128, 512 prototypes (Lightning Bolts' SwAV default for small datasets; 3000 is for "
        "ImageNet's 1000 classes), prototypes frozen for "
        "the first 40 steps, the warm-up (the paper: the first of hundreds of epochs; here 1.7 in all)"
        f", {fifteen_minutes(1.7, 0.507)}",
        config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32),
                    projection_hidden_dim=512, projection_dim=128, num_prototypes=512, num_local_crops=4,
                    local_crop_size=16, freeze_prototypes_steps=40),
        # 1.7 epochs = 400 steps: 13.1 minutes at the 0.507 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, **fifteen_minute_schedule(1.7),
                      warmup_steps=0.1),
        # model step fp32 -> bf16 here: 1,223 -> 1,437 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=False,
    ),
    "base": Preset(
        "the paper's ResNet-50, multi-crop 2 x 224 px + 6 x 96 px, projection 2048 -> 2048 -> 128, 3000 "
        "prototypes, batch 4096 (64 x 64), 100 epochs, prototypes frozen for the first 313 steps (one epoch)",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224),
                    projection_hidden_dim=2048, projection_dim=128, num_prototypes=3000, num_local_crops=6,
                    local_crop_size=96, freeze_prototypes_steps=313),
        training=dict(_OPTIM, learning_rate=4e-3, per_device_train_batch_size=64, num_train_epochs=100,
                      warmup_steps=0.1),
    ),
}

METHOD = Method(
    name="swav",
    summary="SwAV: predict the equipartitioned prototype assignment (code) of one crop from the other crops",
    paper=("Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, Unsupervised Learning of Visual Features by "
           "Contrasting Cluster Assignments, NeurIPS 2020 (arXiv:2006.09882)"),
    config_class=SwAVConfig,
    model_class=SwAVForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=multi_crop_collator,
    tags=("clustering", "multi-crop"),
    display_name="SwAV",
    limitations=(
        trained_with_adamw_not_lars("lr 4.8 at batch 4096, weight decay 1e-6")
        + "; the AdamW learning rates were not tuned here. BatchNorm normalises "
        "over each process's own crops of one resolution (the paper synchronises BN over all GPUs). The crops use "
        "the shared multi-crop colour pipeline (DINO's: weaker jitter, blur, solarisation), not SwAV's jitter "
        "strength 1 with blur p = 0.5. The prototype freeze is counted in optimizer steps "
        "(freeze_prototypes_steps), so its length in epochs depends on the dataset and batch size; the optional "
        "queue starts at a fraction of training rather than an epoch. "
        f"{RESNET_STEM_AT_32_PX}, and 4x4 of a 16 px local crop."
    ),
)

__all__ = ["SwAVConfig", "SwAVForPreTraining", "SwAVOutput", "METHOD"]
