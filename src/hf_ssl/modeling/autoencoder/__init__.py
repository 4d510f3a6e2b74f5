"""Autoencoder (the lecture notes, seed 004: an information bottleneck trained to reconstruct its input)."""

from ...data.collators import flip_collator
from ...registry import Method, Preset
from ..presets import SMALL_RESNET_HALF, fifteen_minute_schedule, fifteen_minutes
from .configuration_autoencoder import AutoencoderConfig
from .modeling_autoencoder import AutoencoderForPreTraining, ReconstructionOutput

# The notes give no optimiser recipe; AdamW with a cosine schedule, as the other presets here. `tiny` is for tests;
# `small` trains a ResNet-18 on 32 px images on a CPU; `base` is a ResNet-50 at ImageNet's 224 px.
_OPTIM = dict(weight_decay=1e-4, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ResNet 8-16 wide x2 stages, 16 px, bottleneck 16, decoder 16 wide from 4x4: a step in milliseconds",
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16), bottleneck_dim=16,
                    decoder_width=16),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET_HALF}, bottleneck 128, decoder 128 wide from 4x4 (3 up-convolutions), "
        f"{fifteen_minutes(13, 3.998)}",
        config=dict(backbone="resnet18-half", backbone_overrides=dict(image_size=32), bottleneck_dim=128,
                    decoder_width=128),
        # 13 epochs = 3,055 steps in bf16: 764 s of training alone here (3.998 steps/s), Fashion-MNIST kNN (full test
        # split) 88.50% (`--seed 1`: 88.28%); 17 epochs (1,105 s, another hour's 3.6 steps/s) 88.63%. In fp32: 11
        # epochs (903 s) 88.18%; 13 epochs 88.44% (lr 2e-3), 88.36% (3e-3), 88.31% (1e-3, 3,000 steps), 88.22%
        # (2e-3, bottleneck 256). On digits, 12 epochs (72 steps) left kNN below the raw pixels (96.67% against
        # 97.50%); the 300 steps of min_steps beat them (98.61%; 98.89% at lr 1e-3).
        training=dict(_OPTIM, learning_rate=2e-3, per_device_train_batch_size=256, warmup_steps=0.05,
                      **fifteen_minute_schedule(13)),
        # model step fp32 -> bf16 here: 275 -> 191 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "ResNet-50 at 224 px, bottleneck 128, decoder 512 wide from 7x7 (5 up-convolutions)",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224), bottleneck_dim=128,
                    decoder_width=512),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, num_train_epochs=100,
                      warmup_steps=0.05),
    ),
}

METHOD = Method(
    name="autoencoder",
    summary="Autoencoder: encode the image to a low-dimensional bottleneck and reconstruct all its pixels (MSE)",
    paper=("The autoencoder as an information bottleneck (lecture notes on self-supervised learning); Hinton and "
           "Salakhutdinov, Reducing the Dimensionality of Data with Neural Networks, Science 2006"),
    config_class=AutoencoderConfig,
    model_class=AutoencoderForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=flip_collator,
    tags=("reconstruction", "autoencoder"),
    display_name="Autoencoder",
    limitations=(
        "A plain autoencoder is rewarded for keeping whatever reconstructs the pixels (brightness, layout), not what "
        "tells classes apart; on small centred images such as Fashion-MNIST that is much of the class (at the "
        "15-minute budget it led every method measured), on natural photographs the contrastive methods are expected "
        "to lead, as in the literature (not measured here). The bottleneck sits on the "
        "backbone's globally pooled features, so the decoder must rebuild every spatial detail from one vector; "
        "at 32 px the ResNet stem (7x7 stride-2 conv + max pool) keeps only 8x8 of the image."
    ),
)

__all__ = ["AutoencoderConfig", "AutoencoderForPreTraining", "ReconstructionOutput", "METHOD"]
