"""VICReg (Bardes, Ponce, LeCun, ICLR 2022)."""

from ...data.collators import byol_views_collator
from ...registry import Method, Preset
from ..presets import (
    CIFAR_STEM_NOT_DONE, PER_PROCESS_BATCH_NORM, RESNET_STEM_AT_32_PX, SMALL_RESNET_HALF, fifteen_minute_schedule,
    fifteen_minutes, tiny_preset, trained_with_adamw_not_lars,
)
from .configuration_vicreg import VICRegConfig
from .modeling_vicreg import VICRegForPreTraining, VICRegOutput


# The paper trains with LARS (base lr 0.2 x batch / 256, weight decay 1e-6, 10 warmup epochs, cosine decay,
# batch 2048, 1000 epochs). transformers has no LARS, so every preset uses AdamW with a cosine schedule and the
# AdamW recipe that the VICReg authors published for the same loss in VICRegL (Bardes, Ponce, LeCun, NeurIPS
# 2022; github.com/facebookresearch/VICRegL, main_vicregl.py / utils.learning_schedule): lr = 5e-4 x batch / 256,
# weight decay 0.05, 10 warmup epochs. `tiny` is for tests (a larger lr so that 30 steps move);
# `small` trains a ResNet-18 on small images on a CPU; `base` is the paper's ResNet-50 at 224 px.
_OPTIM = dict(weight_decay=0.05, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        tiny_preset("16 px, expander 32-32-32"),
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    projection_hidden_dim=32, projection_dim=32),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET_HALF}, expander 1024-1024-1024 (4x the 256 features, as the paper's 8192 is 4x "
        f"ResNet-50's 2048), {fifteen_minutes(8)}",
        config=dict(backbone="resnet18-half", backbone_overrides=dict(image_size=32),
                    projection_hidden_dim=1024, projection_dim=1024),
        # 8 epochs = 1,875 steps, 13.5 minutes at the 2.31 steps/s measured here (a 2048-wide expander: 1.48)
        training=dict(_OPTIM, learning_rate=5e-4, per_device_train_batch_size=256, warmup_steps=0.1,
                      **fifteen_minute_schedule(8)),
        # model step fp32 -> bf16 here: 330 -> 280 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "the paper's ResNet-50 at 224 px, expander 8192-8192-8192, batch 2048 (8 x 256), 1000 epochs",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224),
                    projection_hidden_dim=8192, projection_dim=8192),
        training=dict(_OPTIM, learning_rate=5e-4 * 2048 / 256, per_device_train_batch_size=256,
                      num_train_epochs=1000, warmup_steps=0.01),
    ),
}

METHOD = Method(
    name="vicreg",
    summary=("VICReg: make the embeddings of two views of an image agree (invariance) while keeping every "
             "dimension's variance up (variance) and the dimensions decorrelated (covariance); no negatives"),
    paper=("Bardes, Ponce, LeCun, VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised "
           "Learning, ICLR 2022 (arXiv:2105.04906)"),
    config_class=VICRegConfig,
    model_class=VICRegForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=byol_views_collator,  # BYOL's two asymmetric view pipelines, which the paper uses (appendix)
    tags=("non-contrastive", "information-maximization"),
    display_name="VICReg",
    limitations=(
        trained_with_adamw_not_lars("base lr 0.2 x batch / 256, weight decay 1e-6",
                                    "the VICRegL authors' AdamW recipe, lr 5e-4 x batch / 256, weight decay 0.05")
        + ". The loss sums the variance terms of the two views as the paper's loss formula and "
        "Alg. 1; the released code averages them (variance_weight 12.5 here reproduces it). The variance and "
        f"covariance terms use the global batch, but {PER_PROCESS_BATCH_NORM} (the paper synchronises it). "
        f"{RESNET_STEM_AT_32_PX}; {CIFAR_STEM_NOT_DONE}."
    ),
)

__all__ = ["VICRegConfig", "VICRegForPreTraining", "VICRegOutput", "METHOD"]
