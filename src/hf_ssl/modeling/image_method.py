"""What every image SSL method shares: the config fields and checks of its input pipeline, and the
model attributes Trainer and the export rely on. A method's own folder adds only its objective."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

from ..nn.backbone import load_backbone_weights
from .method_model import MethodModel

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
DEFAULT_IMAGE_SIZE = 224


def _first(size) -> int:
    return int(size[0] if isinstance(size, (list, tuple)) else size)


@strict
class ImageMethodConfig(PretrainedConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder, any transformers vision config; it holds the input
        geometry (`image_size`, `patch_size` for ViTs, `num_channels`). Exported as its native class.
    image_mean / image_std: normalisation of the pixels (ImageNet's by default), saved with the exported
        image processor.
    """

    backbone_config: dict | PretrainedConfig | None = None
    image_mean: list[float] | None = None
    image_std: list[float] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.image_mean is None:
            self.image_mean = list(IMAGENET_MEAN)
        if self.image_std is None:
            self.image_std = list(IMAGENET_STD)

    @property
    def vision_config(self) -> PretrainedConfig:
        """The config that holds the image geometry: the backbone's, or its vision tower's (image-text models)."""
        return getattr(self.backbone_config, "vision_config", None) or self.backbone_config

    @property
    def image_size(self) -> int:
        size = getattr(self.vision_config, "image_size", None)
        return DEFAULT_IMAGE_SIZE if size is None else _first(size)

    @property
    def patch_size(self) -> int:
        """The backbone's patch size (ViT); 1 for backbones without patches (the smallest valid image)."""
        size = getattr(self.vision_config, "patch_size", None)
        return 1 if size is None else _first(size)

    @property
    def num_channels(self) -> int:
        return int(self.vision_config.num_channels)

    def validate_image_geometry(self):
        """Run by `@strict` on creation for every image method."""
        if self.patch_size < 1 or self.image_size < 1:
            raise ValueError(f"image_size ({self.image_size}) and patch_size ({self.patch_size}) must be positive")
        if self.patch_size > self.image_size or self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size} (and at least one patch)"
            )
        if len(self.image_mean) != self.num_channels or len(self.image_std) != self.num_channels:
            raise ValueError(f"image_mean and image_std need {self.num_channels} values (one per channel)")

    def validate_crop_scale(self):
        """The smallest random-resized-crop area of the methods that declare a `crop_min_scale` field."""
        scale = getattr(self, "crop_min_scale", None)
        if scale is not None and not 0.0 < scale <= 1.0:
            raise ValueError(f"crop_min_scale must be in (0, 1], got {scale}")


def method_config_fields(config_class: type[PretrainedConfig]) -> list[str]:
    """The hyperparameters a method config declares, its own and those of the shared bases above
    `PretrainedConfig` (base fields first), without the nested configs (`backbone_config`, a teacher's or a
    tokenizer's, filled from a path flag) and without the fields a config derives from others (its class attribute
    `derived_fields`: jigsaw's permutation set, made from `num_permutations` and `permutation_seed`): the CLI's
    method flags and the card's hyperparameters."""
    names: list[str] = []
    for cls in reversed(config_class.__mro__):
        if issubclass(cls, PretrainedConfig) and cls is not PretrainedConfig:
            names += [n for n in cls.__dict__.get("__annotations__", {}) if n not in names]
    sub_configs = set(getattr(config_class, "sub_configs_defaults", {})) | {"backbone_config"}
    sub_configs |= set(getattr(config_class, "derived_fields", ()))
    return [n for n in names if n not in sub_configs and not n.startswith("_")]


class ImageMethodModel(MethodModel):
    """Base of image SSL models: `self.backbone` is the native encoder that gets exported."""

    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def get_encoder(self):
        """The online backbone: what a checkpoint given with `--backbone` is loaded into."""
        return self.backbone

    def exported_model(self):
        """The backbone that is exported and evaluated; the online one unless a method's paper evaluates another
        (DINO: the teacher)."""
        return self.get_encoder()

    def load_encoder_weights(self, checkpoint: str) -> None:
        """Start from a checkpoint's backbone weights (`--backbone PATH_OR_HUB_ID`)."""
        load_backbone_weights(self.get_encoder(), checkpoint)
