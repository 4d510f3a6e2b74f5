"""Configuration of Colorful Image Colorization.

Zhang, Isola, Efros. "Colorful Image Colorization", ECCV 2016 (arXiv:1603.08511). The defaults are the paper's:
the ab plane quantised on a grid of 10, soft-encoded targets over the 5 nearest bins (Gaussian, sigma 5), class
rebalancing with lambda = 1/2 and a prior smoothed with sigma 5, predictions at 1/4 of the input resolution, and
colours decoded by the annealed mean with T = 0.38.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..image_method import DEFAULT_IMAGE_SIZE, ImageMethodConfig


@strict
class ColorizationConfig(ImageMethodConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder, any transformers vision backbone (ResNet, ConvNeXt: its last
        feature map; ViT: its patch tokens). It sees the lightness channel L as a gray RGB image in the model's input
        normalisation. Its `image_size` (an extra attribute on conv configs, 224 when absent) is the training
        resolution. Exported as the native backbone class.
    ab_grid_size (`int`, defaults to 10): side of the ab cells (Sec. 2.1: "grid size 10"); the classes are the cells
        that hold sRGB colours (`nn.color.ab_bins`: 262 for grid 10, the paper's file has 313, see there).
    num_soft_neighbors (`int`, defaults to 5): bins that share each pixel's soft-encoded target (Sec. 2.1).
    soft_encoding_sigma (`float`, defaults to 5.0): sigma, in ab units, of the Gaussian that weighs those bins.
    rebalance_mixing (`float`, defaults to 0.5): lambda of the class rebalancing, the share of the uniform
        distribution mixed into the prior (Eq. 4); 1 turns rebalancing off.
    prior_smoothing_sigma (`float`, defaults to 5.0): sigma, in ab units, of the Gaussian that smooths the empirical
        prior of the bins before the weights are computed (Eq. 4).
    annealed_mean_temperature (`float`, defaults to 0.38): T of the annealed-mean decoding (Sec. 2.3); used for the
        card's colorized images only, not by the loss.
    output_stride (`int`, defaults to 4): the predictions and the loss are at 1/`output_stride` of the input
        resolution (the paper: 56x56 for 224x224 inputs), the decoded ab upsampled bilinearly to full size.
    crop_min_scale (`float`, defaults to 0.47): smallest area of the random resized crop: the reference training
        crops 176x176 out of 256x256 images, area (176/256)^2 = 0.47; images here are stored at the model's size.
    horizontal_flip (`bool`, defaults to `True`): random horizontal flips (the reference data layer mirrors).
    require_color (`bool`, defaults to `True`): the collator raises on a first batch whose every image is grayscale
        (R = G = B on every pixel): such data has no colour to learn. Set False only to exercise the pipeline on
        gray data (the tests' tiny preset on digits).
    initializer_range (`float`, defaults to 0.02): std of the normal init of the 1x1 classification head.
    """

    model_type = "hf_ssl_colorization"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    ab_grid_size: int = 10
    num_soft_neighbors: int = 5
    soft_encoding_sigma: float = 5.0
    rebalance_mixing: float = 0.5
    prior_smoothing_sigma: float = 5.0
    annealed_mean_temperature: float = 0.38
    output_stride: int = 4
    crop_min_scale: float = 0.47
    horizontal_flip: bool = True
    require_color: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # One source of truth for the resolution: the backbone config (an extra attribute on conv configs).
        if getattr(self.backbone_config, "image_size", None) is None:
            self.backbone_config.image_size = DEFAULT_IMAGE_SIZE

    def validate_colorization(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.num_channels != 3:
            raise ValueError(f"colorization needs an RGB backbone (num_channels 3), got {self.num_channels}")
        if not 1 <= self.ab_grid_size <= 64:
            raise ValueError(f"ab_grid_size must be in [1, 64], got {self.ab_grid_size}")
        if self.num_soft_neighbors < 1:
            raise ValueError(f"num_soft_neighbors must be >= 1, got {self.num_soft_neighbors}")
        for name in ("soft_encoding_sigma", "prior_smoothing_sigma", "annealed_mean_temperature",
                     "initializer_range"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.rebalance_mixing <= 1.0:
            raise ValueError(f"rebalance_mixing must be in [0, 1], got {self.rebalance_mixing}")
        if self.output_stride < 1 or self.image_size % self.output_stride:
            raise ValueError(f"output_stride must be >= 1 and divide image_size {self.image_size}, "
                             f"got {self.output_stride}")


__all__ = ["ColorizationConfig"]
