"""Rotation prediction, RotNet (Gidaris, Singh, Komodakis, ICLR 2018)."""

from ...data.collators import crop_flip_collator
from ...registry import Method, Preset
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_rotation import RotationConfig
from .modeling_rotation import RotationForPreTraining, RotationOutput

# The paper trains with SGD (momentum 0.9, weight decay 5e-4, lr 0.1 on CIFAR / 0.01 on ImageNet, step decay), batch
# 128-192 images, each in its 4 rotations. Every preset here uses AdamW with a cosine schedule, as the other methods:
# `tiny` is for tests; `small` trains a ResNet-18 on small images on a CPU; `base` is a ResNet-50 at 224 px with the
# paper's ImageNet batch of 192 images (768 rotated images per step).
_OPTIM = dict(weight_decay=5e-4, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ResNet 8-16 wide x2 stages, 16 px: a step in milliseconds, for tests",
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16)),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ResNet-18 at 32 px, 128 images (512 rotated) per step: small images on a CPU"
        f", {fifteen_minutes(1.6, 0.971)}",
        config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32)),
        # 1.6 epochs = 751 steps: 12.9 minutes at the 0.971 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=128, **fifteen_minute_schedule(1.6),
                      warmup_steps=0.05),
        # model step fp32 -> bf16 here: 768 -> 520 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "ResNet-50 at 224 px, the paper's batch of 192 images (768 rotated), 30 epochs",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224)),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=192, num_train_epochs=30,
                      warmup_steps=0.05),
    ),
}

METHOD = Method(
    name="rotation",
    summary="RotNet: predict by which of 0, 90, 180, 270 degrees an image was rotated; all four rotations per batch",
    paper=("Gidaris, Singh, Komodakis, Unsupervised Representation Learning by Predicting Image Rotations, "
           "ICLR 2018 (arXiv:1803.07728)"),
    config_class=RotationConfig,
    model_class=RotationForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=crop_flip_collator,  # random crop + flip; the model rotates the batch itself
    tags=("pretext-task", "transformation-prediction"),
    display_name="RotNet",
    limitations=(
        "Trained with AdamW and a cosine schedule, not the paper's SGD with step decay. The 4-way classifier is one "
        "linear layer on the pooled backbone features (the paper's classifier is the top of its NIN / AlexNet). "
        "The task is ill-posed for rotation-invariant content (the paper's caveat: round objects, textures, "
        "top-down views); on digits and Fashion-MNIST some classes (0, 8, bags) are nearly symmetric. The paper's "
        "best features come from intermediate layers; the exported backbone is evaluated on its final features."
    ),
)

__all__ = ["RotationConfig", "RotationForPreTraining", "RotationOutput", "METHOD"]
