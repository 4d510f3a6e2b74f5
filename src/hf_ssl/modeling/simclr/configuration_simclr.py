"""Configuration of SimCLR.

Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual Representations",
ICML 2020 (arXiv:2002.05709). The defaults are the paper's: a ResNet-50 encoder, a 2-layer projection head
2048 -> 128 with BatchNorm, NT-Xent with temperature 0.5 over the global batch, and the Appendix A
augmentation (crop scale 0.08-1, colour jitter strength 1, grayscale p = 0.2, blur p = 0.5).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import TwoViewAugmentationConfig


@strict
class SimCLRConfig(TwoViewAugmentationConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder f (any transformers vision backbone; the paper's is a
        ResNet-50, `ResNetConfig`). Its `image_size` (ViT's own field; an extra attribute on conv configs,
        224 when absent) is the training resolution. Exported as the native backbone class.
    projection_hidden_dim (`int`, defaults to 2048): hidden width of the projection head g (Sec. 2.1).
    projection_dim (`int`, defaults to 128): output width of g, where the loss is computed.
    temperature (`float`, defaults to 0.5): tau of NT-Xent (the paper's default at batch 4096, Appendix B.9;
        smaller values such as 0.1 suit larger batches and longer training, Table 5).
    gather_distributed (`bool`, defaults to `True`): contrast against the projections of all processes
        (the paper's global batch of negatives), not only the local ones.
    crop_min_scale, jitter_strength, blur_probability, grayscale_probability: the augmentation of Appendix A,
        declared with its defaults (0.08, 1.0, 0.5, 0.2) in `TwoViewAugmentationConfig`.
    initializer_range (`float`, defaults to 0.01): std of the normal init of the projection head's linear
        layers (the reference TF2 code's `LinearLayer` uses `RandomNormal(stddev=0.01)`).
    """

    model_type = "hf_ssl_simclr"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    projection_hidden_dim: int = 2048
    projection_dim: int = 128
    temperature: float = 0.5
    # crop_min_scale, jitter_strength, blur_probability, grayscale_probability: TwoViewAugmentationConfig's

    def validate_simclr(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.projection_hidden_dim < 1 or self.projection_dim < 1:
            raise ValueError(
                f"projection_hidden_dim and projection_dim must be >= 1, got {self.projection_hidden_dim} "
                f"and {self.projection_dim}"
            )


__all__ = ["SimCLRConfig"]
