"""Configuration of relative patch location (context prediction).

Doersch, Gupta, Efros. "Unsupervised Visual Representation Learning by Context Prediction", ICCV 2015
(arXiv:1505.05192). The defaults are the paper's (Sec. 3-4): 96 px patches, a centre patch and one of its 8
neighbours on a 3x3 grid with 48 px gaps, every patch jittered by up to 7 px, from images of 150K-450K pixels (here
400 x 400 = 160K); both patches through one shared (siamese) encoder, their features concatenated and classified into
the 8 positions; "colour dropping" against chromatic aberration: 2 of the 3 colour channels of every patch replaced by
Gaussian noise with 1/100 of the standard deviation of the remaining one.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..pretext_task import PretextTaskConfig
from ...nn.pretext import check_grid_geometry


@strict
class RelativePatchLocationConfig(PretextTaskConfig):
    r"""
    backbone_config (`PretrainedConfig`): the shared patch encoder (any transformers vision backbone; the paper's is
        AlexNet-like, up to fc6). Its `image_size` is the side of the images the patches are cut from (400 when
        absent, an image of 160K pixels), and of the images the exported encoder is evaluated on.
    tile_size (`int`, defaults to 96): side of the patches in pixels (Sec. 3); a multiple of the patch size of ViTs.
    tile_gap (`int`, defaults to 48): gap between the centre patch and its neighbour before jitter (Sec. 3: "a gap of
        approximately half the size of the patches"), so that low-level cues (edges, textures continuing across the
        boundary) cannot solve the task.
    max_jitter (`int`, defaults to 7): every patch moves by a random offset in [-7, 7] px per axis (Sec. 3), so that
        the patches' exact alignment gives nothing away; at most tile_gap / 2 (patches never overlap).
    color_dropping (`bool`, defaults to `True`): the chromatic-aberration guard (Sec. 3.1: the paper's "colour
        dropping", chosen here over the projection of every pixel towards gray along the green-magenta axis).
    color_drop_noise_std (`float`, defaults to 0.01): std of the noise in the dropped channels, relative to the std
        of the kept channel of the same patch (Sec. 3.1: "approximately 1/100").
    classifier_hidden_dim (`int`, defaults to 4096): width of the hidden layer (fc7) of the classifier on the
        concatenated features of the pair, whose output layer (fc8) gives the 8 logits; 0 = a linear classifier.
    initializer_range (`float`, defaults to 0.01): std of the normal init of the classifier's linear layers.
    """

    model_type = "hf_ssl_relative_patch_location"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}
    default_image_size = 400

    tile_size: int = 96
    tile_gap: int = 48
    max_jitter: int = 7
    color_dropping: bool = True
    color_drop_noise_std: float = 0.01
    classifier_hidden_dim: int = 4096

    def validate_relative_patch_location(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        check_grid_geometry(self.image_size, self.tile_size, self.tile_gap, self.max_jitter)
        if self.tile_size % self.patch_size:
            raise ValueError(f"tile_size {self.tile_size} must be a multiple of the backbone's patch_size "
                             f"{self.patch_size}")
        if self.color_drop_noise_std < 0:
            raise ValueError(f"color_drop_noise_std must be >= 0, got {self.color_drop_noise_std}")
        if self.classifier_hidden_dim < 0:
            raise ValueError(f"classifier_hidden_dim must be >= 0, got {self.classifier_hidden_dim}")


__all__ = ["RelativePatchLocationConfig"]
