"""Configuration of Masked Autoencoders (MAE).

He, Chen, Xie, Li, Dollár, Girshick. "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022
(arXiv:2111.06377). The defaults are the paper's: 75% random masking, an 8-block 512-wide decoder,
normalized-pixel targets, fixed 2-D sin-cos position embeddings.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@strict
class MAEConfig(PretrainedConfig):
    r"""
    backbone_config (`PretrainedConfig`): the ViT encoder (`ViTConfig`); its `image_size`, `patch_size` and
        `num_channels` define the patches. Exported as a native `ViTModel`.
    mask_ratio (`float`, defaults to 0.75): share of patches hidden from the encoder (paper Fig. 5: 75% is best).
    norm_pix_loss (`bool`, defaults to `True`): reconstruct per-patch normalised pixels (paper Table 1d).
    decoder_hidden_size / decoder_num_hidden_layers / decoder_num_attention_heads / decoder_intermediate_size:
        the lightweight decoder (paper default 512 wide, 8 blocks, 16 heads, MLP ratio 4).
    fixed_position_embeddings (`bool`, defaults to `True`): fixed 2-D sin-cos position embeddings in encoder
        and decoder, as in the paper; `False` lets the encoder learn them.
    crop_min_scale (`float`, defaults to 0.2): smallest area of the random resized crop (the paper's only
        augmentation besides flipping).
    horizontal_flip (`bool`, defaults to `True`): random horizontal flips.
    image_mean / image_std: normalisation of the pixels, saved with the exported image processor.
    """

    model_type = "hf_ssl_mae"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="vit")}

    backbone_config: dict | PretrainedConfig | None = None
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    fixed_position_embeddings: bool = True
    crop_min_scale: float = 0.2
    horizontal_flip: bool = True
    image_mean: list[float] | None = None
    image_std: list[float] | None = None
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.image_mean is None:
            self.image_mean = list(IMAGENET_MEAN)
        if self.image_std is None:
            self.image_std = list(IMAGENET_STD)

    @property
    def image_size(self) -> int:
        size = self.backbone_config.image_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def patch_size(self) -> int:
        size = self.backbone_config.patch_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def num_channels(self) -> int:
        return int(self.backbone_config.num_channels)

    def validate_mae(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ValueError(f"crop_min_scale must be in (0, 1], got {self.crop_min_scale}")
        backbone = self.backbone_config
        if backbone.model_type != "vit":
            raise ValueError(f"MAE needs a ViT backbone (model_type 'vit'), got '{backbone.model_type}'")
        if self.patch_size < 1 or self.image_size < 1:
            raise ValueError(f"image_size ({self.image_size}) and patch_size ({self.patch_size}) must be positive")
        if self.patch_size > self.image_size or self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size} (and at least one patch)"
            )
        num_patches = (self.image_size // self.patch_size) ** 2
        if int(num_patches * (1 - self.mask_ratio)) < 1:
            raise ValueError(f"mask_ratio {self.mask_ratio} leaves no visible patch out of {num_patches}")
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} is not divisible by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        if self.fixed_position_embeddings and (self.decoder_hidden_size % 4 or backbone.hidden_size % 4):
            raise ValueError("fixed sin-cos position embeddings need encoder and decoder widths divisible by 4")
        if len(self.image_mean) != self.num_channels or len(self.image_std) != self.num_channels:
            raise ValueError(f"image_mean and image_std need {self.num_channels} values (one per channel)")


__all__ = ["MAEConfig"]
