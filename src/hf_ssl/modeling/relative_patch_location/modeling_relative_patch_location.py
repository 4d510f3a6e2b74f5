"""Relative patch location (context prediction) around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Doersch, Gupta, Efros, "Unsupervised Visual Representation Learning by Context Prediction", ICCV 2015
(arXiv:1505.05192).

The collator cuts a centre patch and one of its 8 neighbours from every image (a 3x3 grid with gaps, every patch
jittered; `data.pretext_tasks.RelativePatchLocationCollator`). Both patches of all B pairs go through the shared
(siamese) backbone in one call; the pair's two feature vectors are concatenated (centre first) and a classifier
predicts where the second patch lies: labels 0..7 are the 8 neighbours in row-major order (top-left, top, top-right,
left, right, bottom-left, bottom, bottom-right). The loss is the cross-entropy over the 8 positions (Sec. 3). The
backbone is exported; the classifier is discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from ..pretext_task import PretextTaskModel
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead
from ...nn.pretext import NEIGHBOUR_OFFSETS

from .configuration_relative_patch_location import RelativePatchLocationConfig


@dataclass
class RelativePatchLocationOutput(ModelOutput):
    """
    loss: cross-entropy over the 8 neighbour positions (None when `return_loss=False` or without `labels`).
    logits: (B, 8) position logits of every pair.
    pooled_features: (B, 2, D) backbone features of the centre patch and of the neighbour.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class RelativePatchLocationForPreTraining(PretextTaskModel):
    config_class = RelativePatchLocationConfig
    base_model_prefix = "relative_patch_location"

    def __init__(self, config: RelativePatchLocationConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        pair_dim = 2 * feature_dim(config.backbone_config)
        hidden = config.classifier_hidden_dim
        self.classifier = ProjectionHead(pair_dim, hidden or pair_dim, len(NEIGHBOUR_OFFSETS),
                                         num_layers=2 if hidden else 1, batch_norm=False)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_loss: bool = True,
                **kwargs) -> RelativePatchLocationOutput:
        """pixel_values: (B, 2, C, t, t) the centre patch and its neighbour; labels: (B,) the neighbour's position."""
        if pixel_values.dim() != 5 or pixel_values.shape[1] != 2:
            raise ValueError(f"{type(self).__name__} expects pairs of patches (B, 2, C, t, t), got "
                             f"{tuple(pixel_values.shape)}")
        features = self.encode(pixel_values.flatten(0, 1)).unflatten(0, (-1, 2))  # one call for both patches
        logits = self.classifier(features.flatten(1))  # [centre features, neighbour features]
        loss = F.cross_entropy(logits.float(), labels) if return_loss and labels is not None else None
        return RelativePatchLocationOutput(loss=loss, logits=logits, pooled_features=features)


__all__ = ["RelativePatchLocationForPreTraining", "RelativePatchLocationOutput"]
