"""Configuration of Barlow Twins.

Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
ICML 2021 (arXiv:2103.03230). The defaults are the paper's (Sec. 2 and "Implementation details"): a ResNet-50
encoder, a 3-layer projector 8192-8192-8192 (BatchNorm + ReLU on the two hidden layers), the loss
sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2 on the cross-correlation matrix C of the batch-standardised
projections of the two views (Eq. 1-2) with lambda = 5e-3, over the global batch, and BYOL's augmentations.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import TwoViewAugmentationConfig


@strict
class BarlowTwinsConfig(TwoViewAugmentationConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder (any transformers vision backbone; the paper's is a
        ResNet-50, `ResNetConfig`). Its `image_size` (ViT's own field; an extra attribute on conv configs, 224
        when absent) is the training resolution. Exported as the native backbone class.
    projection_hidden_dim (`int`, defaults to 8192): width of the two hidden layers of the projector
        ("three linear layers, each with 8192 output units"; the paper's ablation of the projector shows
        accuracy rising with its width).
    projection_dim (`int`, defaults to 8192): output width D of the projector: C is D x D.
    lambda_offdiag (`float`, defaults to 5e-3): lambda, the weight of the redundancy-reduction term (the sum of
        the D (D - 1) squared off-diagonal entries of C) against the invariance term (the D diagonal ones). The
        paper's 5e-3 (the code's default is 0.0051) was tuned for D = 8192, batch 2048: the balance depends on
        D, and the authors report no rule for other widths (facebookresearch/barlowtwins issue #9). Scale it
        with the projector: for D = 2048, batch 256 (ResNet-18 on CIFAR-10), 5e-3 still works (solo-learn's
        `scripts/pretrain/cifar/barlow.yaml`, lamb 0.0051); for D = 128, batch 128, Tsai et al. (arXiv:2104.13712,
        github.com/yaohungt/Barlow-Twins-HSIC) train with lambda = 1 / D = 0.0078125. The presets follow these:
        5e-3 at D >= 2048, 1 / D below.
    standardization_eps (`float`, defaults to 1e-5): eps of the per-dimension standardisation
        (z - mean) / sqrt(var + eps) over the batch before C is computed (the reference code's
        `BatchNorm1d(affine=False)`, whose default eps this is).
    gather_distributed (`bool`, defaults to `True`): standardise and correlate over the projections of all
        processes (the reference code's SyncBatchNorm and all-reduce of C), not only the local ones.
    crop_min_scale (`float`, defaults to 0.08; `TwoViewAugmentationConfig`): smallest area of the random resized
        crop of both views (the paper follows BYOL's augmentations: crop 0.08-1, flip, colour jitter
        0.4/0.4/0.2/0.1 with p = 0.8, grayscale p = 0.2, blur p = 1.0 / 0.1 and solarisation p = 0 / 0.2 for the
        two views).
    initializer_range (`float`, defaults to 0.01): std of the normal init of the projector's linear layers
        (close to PyTorch's default that the reference code uses for 2048- and 8192-wide inputs, std
        1 / sqrt(3 fan_in) = 0.013 and 0.006).
    """

    model_type = "hf_ssl_barlow_twins"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    projection_hidden_dim: int = 8192
    projection_dim: int = 8192
    lambda_offdiag: float = 5e-3
    standardization_eps: float = 1e-5
    augmentation_fields = ("crop_min_scale",)  # BYOL's pipelines are fixed apart from the crop scale

    def validate_barlow_twins(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.projection_hidden_dim < 1 or self.projection_dim < 1:
            raise ValueError(
                f"projection_hidden_dim and projection_dim must be >= 1, got {self.projection_hidden_dim} "
                f"and {self.projection_dim}"
            )
        if not self.lambda_offdiag >= 0:
            raise ValueError(f"lambda_offdiag must be >= 0, got {self.lambda_offdiag}")
        if not self.standardization_eps > 0:
            raise ValueError(
                "standardization_eps must be > 0 (it keeps a constant dimension finite), "
                f"got {self.standardization_eps}"
            )


__all__ = ["BarlowTwinsConfig"]
