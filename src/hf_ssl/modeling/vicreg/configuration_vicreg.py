"""Configuration of VICReg.

Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
ICLR 2022 (arXiv:2105.04906). The defaults are the paper's (implementation details and appendix): a ResNet-50 encoder,
a 3-layer expander 8192-8192-8192 with BatchNorm and ReLU on the hidden layers, the loss
lambda * s(Z, Z') + mu * [v(Z) + v(Z')] + nu * [c(Z) + c(Z')] with lambda = mu = 25, nu = 1, gamma = 1,
eps = 1e-4, computed over the global batch, and BYOL's augmentations.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import TwoViewAugmentationConfig


@strict
class VICRegConfig(TwoViewAugmentationConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder f_theta (any transformers vision backbone; the paper's is
        a ResNet-50, `ResNetConfig`). Its `image_size` (ViT's own field; an extra attribute on conv configs, 224
        when absent) is the training resolution. Exported as the native backbone class.
    projection_hidden_dim (`int`, defaults to 8192): width of the two hidden layers of the expander h_phi
        ("3 fully-connected layers of size 8192"; the paper's ablation of the expander shows accuracy rising with
        its width).
    projection_dim (`int`, defaults to 8192): output width of the expander, the embeddings Z the loss sees.
    invariance_weight (`float`, defaults to 25.0): lambda, the weight of the invariance term s (mean squared
        error between the two views' embeddings).
    variance_weight (`float`, defaults to 25.0): mu, the weight of the variance terms v(Z) + v(Z') (Eq. 1). The
        paper sums the two views' terms (its loss formula and Alg. 1); the released code averages them, which is
        variance_weight 12.5 here.
    covariance_weight (`float`, defaults to 1.0): nu, the weight of the covariance terms c(Z) + c(Z'). The
        paper's grid search over the coefficients found lambda = mu = 25, nu = 1 best, with nu = 1 and
        lambda = mu > 1 as the rule of thumb.
    target_std (`float`, defaults to 1.0): gamma, the standard deviation every embedding dimension is pushed to
        reach over the batch (Eq. 1).
    variance_eps (`float`, defaults to 1e-4): epsilon inside S(x, eps) = sqrt(Var(x) + eps) (Eq. 1): keeps the
        gradient of the square root finite when a dimension has collapsed.
    gather_distributed (`bool`, defaults to `True`): the variance and covariance terms are batch statistics over
        the embeddings of all processes (the reference code's `FullGatherLayer`); the invariance term is
        per-sample.
    crop_min_scale (`float`, defaults to 0.08; `TwoViewAugmentationConfig`): smallest area of the random resized
        crop of both views (the paper uses BYOL's augmentations (appendix): crop 0.08-1, flip, colour jitter
        0.4/0.4/0.2/0.1 with p = 0.8, grayscale p = 0.2, blur p = 1.0 / 0.1 and solarisation p = 0 / 0.2 for the
        two views).
    initializer_range (`float`, defaults to 0.01): std of the normal init of the expander's linear layers
        (close to PyTorch's default that the reference code uses for 2048- and 8192-wide inputs, std
        1 / sqrt(3 fan_in) = 0.013 and 0.006).
    """

    model_type = "hf_ssl_vicreg"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    projection_hidden_dim: int = 8192
    projection_dim: int = 8192
    invariance_weight: float = 25.0
    variance_weight: float = 25.0
    covariance_weight: float = 1.0
    target_std: float = 1.0
    variance_eps: float = 1e-4
    augmentation_fields = ("crop_min_scale",)  # BYOL's pipelines are fixed apart from the crop scale

    def validate_vicreg(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.projection_hidden_dim < 1 or self.projection_dim < 1:
            raise ValueError(
                f"projection_hidden_dim and projection_dim must be >= 1, got {self.projection_hidden_dim} "
                f"and {self.projection_dim}"
            )
        for name in ("invariance_weight", "variance_weight", "covariance_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.invariance_weight + self.variance_weight + self.covariance_weight <= 0:
            raise ValueError("invariance_weight, variance_weight and covariance_weight are all 0: there is no loss")
        if not self.target_std > 0:
            raise ValueError(f"target_std must be > 0, got {self.target_std}")
        if not self.variance_eps > 0:
            raise ValueError(
                f"variance_eps must be > 0 (it keeps the gradient of sqrt finite), got {self.variance_eps}"
            )
        if not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be > 0, got {self.initializer_range}")


__all__ = ["VICRegConfig"]
