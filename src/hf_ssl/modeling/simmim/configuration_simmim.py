"""Configuration of SimMIM.

Xie, Zhang, Cao, Lin, Bao, Yao, Dai, Hu. "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022
(arXiv:2111.09886). The defaults are the paper's (Sec. 3-4): random masking of 32x32-pixel mask patches at a
ratio of 0.6, a learnable mask token, a one-layer linear prediction head, an L1 loss on the pixels of the masked
patches only, the normalised image as target.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..image_method import ImageMethodConfig
from ...nn.masking import supports_mask_token


@strict
class SimMIMConfig(ImageMethodConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder: a ViT (`ViTConfig`) or a Swin Transformer (`SwinConfig`), or
        another transformers model that takes `bool_masked_pos` (DeiT, BEiT, Swinv2). Exported as its native class.
    mask_patch_size (`int`, defaults to 32): side in pixels of the squares that are masked or kept as a whole (paper
        Table 1: 32 px is best); a multiple of the backbone's patch size that divides the image size.
    mask_ratio (`float`, defaults to 0.6): share of the mask patches masked per image (paper Table 1).
    crop_min_scale (`float`, defaults to 0.67): smallest area of the random resized crop (SimMIM reference).
    horizontal_flip (`bool`, defaults to `True`): random horizontal flips.
    initializer_range (`float`, defaults to 0.02): std of the truncated-normal init of the mask token and the head.
    """

    model_type = "hf_ssl_simmim"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="vit")}

    mask_patch_size: int = 32
    mask_ratio: float = 0.6
    crop_min_scale: float = 0.67
    horizontal_flip: bool = True
    initializer_range: float = 0.02

    @property
    def encoder_stride(self) -> int:
        """Pixels per output token of the backbone: the patch size for ViTs; for hierarchical backbones (Swin),
        the patch size times 2 per patch-merging stage (paper: 32 for Swin, 16 for ViT-B/16)."""
        depths = getattr(self.backbone_config, "depths", None)
        return self.patch_size * 2 ** (len(depths) - 1) if depths else self.patch_size

    def validate_simmim(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if not supports_mask_token(self.backbone_config):
            raise ValueError(f"SimMIM needs a backbone that takes bool_masked_pos (ViT, Swin, DeiT, BEiT), got "
                             f"'{self.backbone_config.model_type}'")
        if self.mask_patch_size < 1 or self.mask_patch_size % self.patch_size or self.image_size % self.mask_patch_size:
            raise ValueError(f"mask_patch_size must be a multiple of the patch size {self.patch_size} that divides the "
                             f"image size {self.image_size}, got {self.mask_patch_size}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.image_size % self.encoder_stride:
            raise ValueError(f"image_size {self.image_size} must be a multiple of the backbone's output stride "
                             f"{self.encoder_stride}")
        if not 0.0 <= self.initializer_range <= 1.0:
            raise ValueError(f"initializer_range must be in [0, 1], got {self.initializer_range}")


__all__ = ["SimMIMConfig"]
