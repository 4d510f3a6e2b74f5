"""BYOL (Grill et al., NeurIPS 2020)."""

from ...data.collators import byol_views_collator
from ...registry import Method, Preset
from ..presets import (
    PER_PROCESS_BATCH_NORM, RESNET_STEM_AT_32_PX, SMALL_RESNET_HALF, TINY_RESNET, fifteen_minute_schedule,
    fifteen_minutes, trained_with_adamw_not_lars,
)
from .configuration_byol import BYOLConfig
from .modeling_byol import BYOLForPreTraining, BYOLOutput


# The paper trains with LARS (lr 0.2 x batch / 256, weight decay 1.5e-6, biases and BN excluded from both, 10
# warm-up epochs, cosine decay, batch 4096, 1000 epochs). transformers has no LARS, so every preset uses AdamW
# with a cosine schedule. Learning rate: 1e-3 at batch 256, the one the SimCLR preset of this package uses on the
# same backbone and data (so the methods compare), which is also the most used PyTorch BYOL code's Adam rate
# (lucidrains/byol-pytorch README: Adam 3e-4 at batch 20) scaled by sqrt(256 / 20) ~ 3.6, the usual scaling of
# Adam-type learning rates with the batch. `base` scales it by sqrt(4096 / 256) = 4 to 4e-3, between what the
# AdamW-trained BYOL-like methods use at batch 4096 with their linear rule (MoCo v3: 1.5e-4 x 16 = 2.4e-3;
# DINO: 5e-4 x 16 = 8e-3). Weight decay: the paper's 1.5e-6 (its per-step effect under LARS's per-layer trust
# ratio has no clean AdamW equivalent).
_OPTIM = dict(weight_decay=1.5e-6, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        f"{TINY_RESNET}, 16 px, projector 16 -> 32 -> 16 and predictor 16 -> 32 -> 16: a fast step, for tests",
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=32),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET_HALF}, projector 256 -> 1024 -> 256 and predictor 256 -> 1024 -> 256 (the paper's hidden "
        f"= 2 x the 2048 ResNet-50 features, output 256), tau 0.996 -> 1, {fifteen_minutes(8)}",
        config=dict(backbone="resnet18-half", backbone_overrides=dict(image_size=32),
                    projection_hidden_dim=1024, projection_dim=256, prediction_hidden_dim=1024),
        # 8 epochs = 1,875 steps, 13 minutes at the 2.36 steps/s measured here (two encoders, two views)
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, warmup_steps=0.05,
                      **fifteen_minute_schedule(8)),
        # model step fp32 -> bf16 here: 376 -> 312 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "the paper's ResNet-50 at 224 px, projector and predictor 4096 -> 256, batch 4096 (16 x 256), "
        "1000 epochs with 10 warm-up epochs, tau 0.996 -> 1",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224),
                    projection_hidden_dim=4096, projection_dim=256, prediction_hidden_dim=4096),
        training=dict(_OPTIM, learning_rate=4e-3, per_device_train_batch_size=256, num_train_epochs=1000,
                      warmup_steps=0.01),
    ),
}

METHOD = Method(
    name="byol",
    summary="BYOL: an online network predicts the projection of another view made by its slow-moving EMA target",
    paper=("Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Pires, Guo, Azar, Piot, Kavukcuoglu, "
           "Munos, Valko, Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning, NeurIPS 2020 "
           "(arXiv:2006.07733)"),
    config_class=BYOLConfig,
    model_class=BYOLForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=byol_views_collator,  # the two asymmetric view pipelines of Table 6
    tags=("non-contrastive", "momentum-encoder"),
    display_name="BYOL",
    limitations=(
        trained_with_adamw_not_lars("lr 0.2 x batch / 256 = 3.2 at batch 4096, weight decay 1.5e-6, biases and "
                                    "BatchNorm excluded from LARS adaptation and decay")
        + "; the AdamW learning rates are not the paper's and were not tuned here. "
        f"{PER_PROCESS_BATCH_NORM} (both views together), not over the global batch per view as the paper's "
        "synchronised BN does. The target EMA follows the paper's cosine schedule of tau (0.996 -> 1) over the "
        f"run's optimizer steps, so its pace depends on --max_steps / epochs. {RESNET_STEM_AT_32_PX}."
    ),
)

__all__ = ["BYOLConfig", "BYOLForPreTraining", "BYOLOutput", "METHOD"]
