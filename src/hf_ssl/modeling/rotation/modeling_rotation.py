"""Rotation prediction (RotNet) around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Gidaris, Singh, Komodakis, "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018
(arXiv:1803.07728).

Every image of the batch is rotated by 0, 90, 180 and 270 degrees, and all 4B rotated images go through the backbone
in one call (Sec. 2.3: "we feed the network with all four rotated copies of an image simultaneously"); a linear layer
on the pooled features predicts which rotation each one underwent, and the loss is the cross-entropy averaged over the
4B predictions (Eq. 1-3). The backbone is exported; the 4-way classifier is discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ..method_model import ImagePreview
from ..pretext_task import PretextTaskModel
from ...nn.backbone import build_backbone, feature_dim
from ...nn.pretext import NUM_ROTATIONS, rotate_batch, rotate_each

from .configuration_rotation import RotationConfig


@dataclass
class RotationOutput(ModelOutput):
    """
    loss: cross-entropy of the rotation classifier over the 4B rotated images (None when `return_loss=False`).
    logits: (4B, 4) rotation logits, rotation-major: all images at 0 degrees, then all at 90, 180, 270.
    labels: (4B,) the rotation of each row of `logits` (k means k x 90 degrees counter-clockwise).
    pooled_features: (4B, D) backbone features of the rotated images.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    labels: torch.LongTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class RotationForPreTraining(PretextTaskModel):
    config_class = RotationConfig
    base_model_prefix = "rotation"

    def __init__(self, config: RotationConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.classifier = nn.Linear(feature_dim(config.backbone_config), NUM_ROTATIONS)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> RotationOutput:
        rotated, labels = rotate_batch(pixel_values)  # every image in its 4 rotations, in one batch
        features = self.encode(rotated)
        logits = self.classifier(features)
        loss = F.cross_entropy(logits.float(), labels) if return_loss else None
        return RotationOutput(loss=loss, logits=logits, labels=labels, pooled_features=features)

    @torch.no_grad()
    def preview(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> ImagePreview:
        """Each image turned by a random rotation (from the CPU `generator`), and turned back by the one the model
        predicts: the bottom row is upright where the prediction is right."""
        rotations = torch.randint(0, NUM_ROTATIONS, (pixel_values.shape[0],), generator=generator)
        rotated = rotate_each(pixel_values, rotations.to(pixel_values.device))
        predicted = self.classifier(self.encode(rotated)).argmax(dim=-1)
        return ImagePreview(reconstruction=rotate_each(rotated, -predicted), model_input=rotated,
                            row_labels=("original", "rotated", "rotated back by the prediction"))


__all__ = ["RotationForPreTraining", "RotationOutput"]
