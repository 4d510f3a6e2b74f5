"""What the transformation-prediction pretext tasks (rotation, relative patch location, jigsaw) share on top of
`image_method`: the input-size default of conv backbones, the init of their classifier heads, and one backbone call
over a batch of images or tiles. A method's folder adds how it builds its inputs and labels, and its classifier."""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import initialization as init

from .image_method import DEFAULT_IMAGE_SIZE, ImageMethodConfig, ImageMethodModel
from ..nn.backbone import pooled_features


@strict
class PretextTaskConfig(ImageMethodConfig):
    r"""
    initializer_range (`float`, defaults to 0.01): std of the normal init of the classifier heads' linear layers
        (the weight init of the Caffe-era papers' fully connected layers, `gaussian` with std 0.005-0.01).
    """

    initializer_range: float = 0.01

    # the input side when the backbone config has none (conv backbones): a method whose paper works on larger images
    # (context prediction) raises it
    default_image_size = DEFAULT_IMAGE_SIZE

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # One source of truth for the resolution: the backbone config (an extra attribute on conv configs that
        # round-trips through config.json), as the joint-embedding methods do.
        if getattr(self.backbone_config, "image_size", None) is None:
            self.backbone_config.image_size = self.default_image_size

    def validate_initializer_range(self):
        if not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be > 0, got {self.initializer_range}")


class PretextTaskModel(ImageMethodModel):
    """Base of the pretext classifiers: `self.backbone` (exported) and heads owned by the subclass."""

    def _init_weights(self, module: nn.Module) -> None:
        # Only the heads are this class's own; the backbone is initialised by its own class.
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) images or tiles -> (N, D) features, pooled by `feature_pooling` (token backbones) or the
        backbone's own pooling; tiles smaller than `image_size` work (ViTs interpolate their position embeddings)."""
        return pooled_features(self.backbone, pixel_values, self.feature_pooling)


__all__ = ["PretextTaskConfig", "PretextTaskModel"]
