"""Configuration of SimSiam.

Chen and He. "Exploring Simple Siamese Representation Learning", CVPR 2021 (arXiv:2011.10566). The defaults are
the paper's (Sec. 4, baseline settings): a ResNet-50 encoder, a 3-layer projection MLP of 2048 with BN on every
layer (output included), a 2048 -> 512 -> 2048 prediction MLP, the symmetric negative-cosine loss with
stop-gradient (Alg. 1), and MoCo v2's augmentation (crop scale 0.2-1, colour jitter 0.4/0.4/0.4/0.1 with
p = 0.8, grayscale p = 0.2, Gaussian blur p = 0.5).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import TwoViewAugmentationConfig


@strict
class SimSiamConfig(TwoViewAugmentationConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder (any transformers vision backbone; the paper's is a
        ResNet-50, `ResNetConfig`). Its `image_size` is the training resolution. Exported as the native
        backbone class; the paper evaluates it with a linear classifier (Sec. 4).
    projection_hidden_dim (`int`, defaults to 2048): hidden width of the projection MLP (3 layers, BN on each,
        no ReLU on the output; Sec. 4). The encoder f of Alg. 1 is backbone + projection MLP.
    projection_dim (`int`, defaults to 2048): output width d of the projection MLP, where the loss is computed.
    prediction_hidden_dim (`int`, defaults to 512): the bottleneck of the prediction MLP h, d -> 512 -> d
        (Sec. 4: the bottleneck makes h an autoencoder-like module and helps).
    crop_min_scale, jitter_strength, blur_probability, grayscale_probability (`TwoViewAugmentationConfig`):
        MoCo v2's pipeline, which the paper uses (Sec. 4): crop scale 0.2-1 and colour strength 0.5 (its
        0.4/0.4/0.4/0.1) instead of SimCLR's 0.08 and 1.0; blur p = 0.5 and grayscale p = 0.2 as SimCLR.
    gather_distributed (`bool`): inherited; unused, the loss is per sample.
    initializer_range (`float`, defaults to 0.01): std of the normal init of the heads' linear layers.
    """

    model_type = "hf_ssl_simsiam"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    projection_hidden_dim: int = 2048
    projection_dim: int = 2048
    prediction_hidden_dim: int = 512
    crop_min_scale: float = 0.2  # MoCo v2's "aug+" crop (SimSiam Sec. 4), not SimCLR's 0.08
    jitter_strength: float = 0.5  # MoCo v2's jitter 0.4/0.4/0.4/0.1, not SimCLR's strength 1
    # blur_probability, grayscale_probability: TwoViewAugmentationConfig's (MoCo v2's equal SimCLR's)

    def validate_simsiam(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        for name in ("projection_hidden_dim", "projection_dim", "prediction_hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


__all__ = ["SimSiamConfig"]
