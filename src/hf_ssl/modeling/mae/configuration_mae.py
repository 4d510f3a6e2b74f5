"""Configuration of Masked Autoencoders (MAE).

He, Chen, Xie, Li, Dollár, Girshick. "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022
(arXiv:2111.06377). The defaults are the paper's: 75% random masking, an 8-block 512-wide decoder,
normalized-pixel targets, fixed 2-D sin-cos position embeddings.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, ViTConfig
from transformers.configuration_utils import SubConfigSpec

from ..image_method import ImageMethodConfig


@strict
class MAEConfig(ImageMethodConfig):
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
    """

    model_type = "hf_ssl_mae"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="vit")}

    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    fixed_position_embeddings: bool = True
    crop_min_scale: float = 0.2
    horizontal_flip: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.backbone_config.model_type == "vit_mae":
            self._adopt_vit_mae(self.backbone_config)

    def _adopt_vit_mae(self, vit_mae) -> None:
        """`--backbone` named a transformers `vit_mae` checkpoint (`facebook/vit-mae-base`, the port of the reference
        MAE): its encoder becomes this config's ViT and its decoder's geometry this config's, so that its weights,
        decoder included, load into this model (`MAEForPreTraining.load_encoder_weights`) and pretraining continues
        from them. The masking ratio and the target normalisation stay this config's: hyperparameters of the run."""
        encoder_fields = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
                          "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps",
                          "image_size", "patch_size", "num_channels", "qkv_bias")
        self.backbone_config = ViTConfig(**{name: getattr(vit_mae, name) for name in encoder_fields})
        for name in ("decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
                     "decoder_intermediate_size"):
            setattr(self, name, getattr(vit_mae, name))

    def validate_mae(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        backbone = self.backbone_config
        if backbone.model_type != "vit":
            raise ValueError(f"MAE needs a ViT backbone (model_type 'vit'), got '{backbone.model_type}'")
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


__all__ = ["MAEConfig"]
