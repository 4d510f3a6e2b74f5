"""Configuration of BEiT (masked image modelling with visual tokens).

Bao, Dong, Piao, Wei. "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022 (arXiv:2106.08254). The defaults
are the paper's: blockwise masking of about 40% of the patches (Sec. 2.3, Algorithm 1: blocks of at least 16
patches, aspect ratio in [0.3, 1/0.3]), a ViT encoder whose masked patches are replaced by a learnable [MASK]
embedding, and a softmax over the visual tokenizer's codebook at every masked position (Sec. 2.3).
"""

from __future__ import annotations

import os

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from ...errors import first_line
from ..image_method import ImageMethodConfig
from ..method_model import SSL_SUBDIR
from ..visual_tokenizer.configuration_visual_tokenizer import VisualVQConfig
from ...nn.masking import supports_mask_token


@strict
class BEiTConfig(ImageMethodConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder, a ViT (`ViTConfig`, or another transformers model that takes
        `bool_masked_pos`: BEiT, DeiT); its patch grid must be the tokenizer's. Exported as its native class.
    tokenizer (`str`, *optional*): the visual tokenizer whose ids are the targets: the output folder of
        `hf-ssl pretrain --method visual_tokenizer` (or its `ssl/` subfolder, or a Hub id). Its config is read into
        `tokenizer_config` when this config is created, its weights in `load_pretrained_parts`; both are saved
        with BEiT, which is thus self-contained.
    tokenizer_config (`VisualVQConfig`, *optional*): the tokenizer's architecture (filled from
        `tokenizer`); required.
    mask_ratio (`float`, defaults to 0.4): share of the patches masked per image (paper: 40%).
    mask_min_block_patches (`int`, defaults to 16): smallest block of Algorithm 1, in patches (paper: 16 of 196).
    mask_min_aspect (`float`, defaults to 0.3): blocks have an aspect ratio in [mask_min_aspect, 1 / mask_min_aspect].
    crop_min_scale (`float`, defaults to 0.08): smallest area of the random resized crop (BEiT reference).
    horizontal_flip (`bool`, defaults to `True`): random horizontal flips.
    initializer_range (`float`, defaults to 0.02): std of the truncated-normal init of the mask token and the head.
    """

    model_type = "hf_ssl_beit"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="vit"),
        "tokenizer_config": SubConfigSpec(config_class=VisualVQConfig, optional=True),
    }

    tokenizer: str | None = None
    tokenizer_config: dict | PretrainedConfig | None = None
    mask_ratio: float = 0.4
    mask_min_block_patches: int = 16
    mask_min_aspect: float = 0.3
    crop_min_scale: float = 0.08
    horizontal_flip: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.tokenizer is not None and self.tokenizer_config is None:
            self.tokenizer_config = read_tokenizer_config(self.tokenizer)
        super().__post_init__(**kwargs)

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_masking_patches(self) -> int:
        return int(self.mask_ratio * self.grid_size**2)

    def validate_beit(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if not supports_mask_token(self.backbone_config):
            raise ValueError(f"BEiT needs a backbone that takes bool_masked_pos (ViT, BEiT, DeiT), got "
                             f"'{self.backbone_config.model_type}'")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.num_masking_patches < 1:
            raise ValueError(f"mask_ratio {self.mask_ratio} masks no patch out of {self.grid_size**2}")
        if not 1 <= self.mask_min_block_patches <= self.num_masking_patches:
            raise ValueError(f"mask_min_block_patches must be in [1, {self.num_masking_patches}] (the patches masked "
                             f"per image), got {self.mask_min_block_patches}")
        if not 0.0 < self.mask_min_aspect <= 1.0:
            raise ValueError(f"mask_min_aspect must be in (0, 1], got {self.mask_min_aspect}")
        if not 0.0 <= self.initializer_range <= 1.0:
            raise ValueError(f"initializer_range must be in [0, 1], got {self.initializer_range}")

    def validate_tokenizer(self):
        tokenizer = self.tokenizer_config
        if tokenizer is None:
            raise ValueError("BEiT predicts the ids of a visual tokenizer: pass --tokenizer OUT, the output "
                             "folder of `hf-ssl pretrain --method visual_tokenizer`")
        if (tokenizer.image_size, tokenizer.patch_size) != (self.image_size, self.patch_size):
            raise ValueError(
                f"the visual tokenizer works on {tokenizer.image_size} px images with {tokenizer.patch_size} px "
                f"patches, the encoder on {self.image_size} px with {self.patch_size} px: the patch grids must match")
        if list(tokenizer.image_mean) != list(self.image_mean) or list(tokenizer.image_std) != list(self.image_std):
            raise ValueError(f"image_mean/image_std {self.image_mean}/{self.image_std} differ from the visual "
                             f"tokenizer's {tokenizer.image_mean}/{tokenizer.image_std}")


def tokenizer_location(path: str) -> dict[str, str]:
    """`from_pretrained` arguments for a tokenizer given as an `hf-ssl pretrain` output folder (the model is in its
    `ssl/` subfolder, locally or on the Hub) or as the folder of the model itself."""
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, SSL_SUBDIR, "config.json")):
        return {"pretrained_model_name_or_path": path}
    return {"pretrained_model_name_or_path": path, "subfolder": SSL_SUBDIR}


def read_tokenizer_config(path: str) -> VisualVQConfig:
    try:
        config = AutoConfig.from_pretrained(**tokenizer_location(path))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the visual tokenizer '{path}': {first_line(error)}") from None
    if not isinstance(config, VisualVQConfig):
        raise ValueError(f"'{path}' holds a {config.model_type} model, not a visual tokenizer (train one with "
                         "`hf-ssl pretrain --method visual_tokenizer`)")
    return config


__all__ = ["BEiTConfig", "read_tokenizer_config", "tokenizer_location"]
