"""Configuration of BYOL.

Grill, Strub, Altché, Tallec, Richemond, Buchatskaya, Doersch, Pires, Guo, Azar, Piot, Kavukcuoglu, Munos,
Valko. "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020
(arXiv:2006.07733). The defaults are the paper's (Sec. 3.3): a ResNet-50 encoder, projector and predictor
MLPs Linear 4096 -> BN -> ReLU -> Linear 256, a target network whose EMA coefficient rises from
tau_base = 0.996 to 1 along a cosine, and the asymmetric augmentation of Table 6 (crop scale 0.08-1).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import TwoViewAugmentationConfig


@strict
class BYOLConfig(TwoViewAugmentationConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder f_theta (any transformers vision backbone; the paper's is a
        ResNet-50, `ResNetConfig`). Its `image_size` is the training resolution. The online encoder is exported
        as the native backbone class (the paper evaluates y_theta, Sec. 3.1).
    projection_hidden_dim (`int`, defaults to 4096): hidden width of the projector g (Sec. 3.3).
    projection_dim (`int`, defaults to 256): output width of the projector, the space of the loss.
    prediction_hidden_dim (`int`, defaults to 4096): hidden width of the predictor q, an MLP with the projector's
        architecture on the projection_dim-wide projection (Sec. 3.3).
    base_momentum (`float`, defaults to 0.996): tau_base of the target EMA xi <- tau xi + (1 - tau) theta, with
        tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2 at step k of K (Sec. 3.3). 1 freezes the target at its
        initial weights; 0 makes it a copy of the online network (the paper's Table 5a: collapse-prone).
    crop_min_scale (`float`, defaults to 0.08; `TwoViewAugmentationConfig`): smallest area of the random resized
        crop of both views (Table 6). The rest of the asymmetric pipeline (blur p = 1.0 / 0.1, solarisation p = 0 / 0.2, colour
        jitter 0.4/0.4/0.2/0.1 with p = 0.8, grayscale p = 0.2) is the paper's and fixed.
    gather_distributed (`bool`): inherited; unused, the BYOL loss is per sample.
    initializer_range (`float`, defaults to 0.01): std of the normal init of the heads' linear layers.
    """

    model_type = "hf_ssl_byol"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    projection_hidden_dim: int = 4096
    projection_dim: int = 256
    prediction_hidden_dim: int = 4096
    base_momentum: float = 0.996
    augmentation_fields = ("crop_min_scale",)  # BYOL's pipelines are fixed apart from the crop scale

    def validate_byol(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        for name in ("projection_hidden_dim", "projection_dim", "prediction_hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.base_momentum <= 1.0:
            raise ValueError(f"base_momentum must be in [0, 1], got {self.base_momentum}")


__all__ = ["BYOLConfig"]
