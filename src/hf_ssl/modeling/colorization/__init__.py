"""Colorful Image Colorization (Zhang, Isola, Efros, ECCV 2016)."""

from ...data.collators import ColorImageCollator
from ...data.transforms import random_resized_crop_flip
from ...registry import Method, Preset
from ..presets import tiny_preset
from .configuration_colorization import ColorizationConfig
from .modeling_colorization import ColorizationForPreTraining, ColorizationOutput


def make_collator(config: ColorizationConfig) -> ColorImageCollator:
    """The reference training data: random crops (here random resized crops of area `crop_min_scale`-1) and
    mirroring, then normalisation; no colour augmentation (the colours are the target). With
    `config.require_color`, a first batch of only grayscale images raises: such data has no colour to learn."""
    augment = random_resized_crop_flip(config.image_size, config.crop_min_scale, config.horizontal_flip)
    return ColorImageCollator(config.image_mean, config.image_std, augment=augment,
                              require_color=config.require_color, method="colorization")


# The paper's optimiser (Sec. 3): Adam, betas (0.9, 0.99), weight decay 1e-3, lr 3e-5 dropped to 1e-5 and 3e-6 at
# 200k and 375k of 450k iterations, batch 40 (about 14 ImageNet epochs). transformers has no plateau steps: every
# preset uses AdamW with a cosine schedule. `tiny` is for tests; `small` fits a folder of photos on a CPU (the ~20
# colour photos scikit-image ships: `imagefolder:PATH`); `base` is the paper's resolution and schedule length.
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.99, weight_decay=1e-3, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        tiny_preset("16 px, 4x4 output"),
        # require_color=False for tests only: the contract test trains every tiny preset on `digits`, which is
        # grayscale (ab = 0 everywhere: nothing to learn, but the whole pipeline runs).
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16), require_color=False),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ViT-Ti width (192) x6, 64 px, patch 4: its 16x16 patch tokens are the paper's 1/4-resolution output",
        config=dict(backbone="vit-tiny", backbone_overrides=dict(num_hidden_layers=6, image_size=64, patch_size=4)),
        training=dict(_OPTIM, learning_rate=3e-4, per_device_train_batch_size=16, num_train_epochs=300,
                      warmup_steps=0.05),
    ),
    "base": Preset(
        "ResNet-50 at 224 px (a 7x7 map upsampled to the paper's 56x56 output), batch 40, 14 epochs",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=224)),
        training=dict(_OPTIM, learning_rate=3e-5, per_device_train_batch_size=40, num_train_epochs=14,
                      warmup_steps=0.0),
    ),
}

METHOD = Method(
    name="colorization",
    summary=("Colorful Image Colorization: predict, from the lightness L alone, a distribution over quantised ab "
             "colours at every pixel (class-rebalanced cross-entropy to soft-encoded targets)"),
    paper="Zhang, Isola, Efros, Colorful Image Colorization, ECCV 2016 (arXiv:1603.08511)",
    config_class=ColorizationConfig,
    model_class=ColorizationForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=make_collator,
    tags=("colorization", "pretext-task"),
    display_name="Colorization",
    limitations=(
        "The backbone is trained on gray images (the lightness as RGB) but evaluated as exported, on colour "
        "images: a shift the paper avoids by evaluating on grayscale (Sec. 3.2). Its head is a 1x1 convolution on "
        "the last feature map with bilinear upsampling, not the paper's VGG-style network with dilated "
        "convolutions and a deconvolution decoder. The classes are the 262 ab cells (grid 10) of the sRGB gamut, "
        "computed; the paper's file has 313 (it includes cells no sRGB colour reaches). The colour prior is counted "
        "during training (the bins of every target pixel seen so far) instead of precomputed on the dataset, so "
        "the rebalancing weights of the first steps come from few images. Grayscale data "
        "(digits, Fashion-MNIST) has no colour: the collator refuses it."
    ),
)

__all__ = ["ColorizationConfig", "ColorizationForPreTraining", "ColorizationOutput", "METHOD"]
