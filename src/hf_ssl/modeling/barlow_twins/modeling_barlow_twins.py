"""Barlow Twins around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Zbontar, Jing, Misra, LeCun, Deny, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021
(arXiv:2103.03230).

Two augmented views of every image go through the same encoder (the backbone, what gets exported) and
projector (this class's own weights, discarded after pretraining). The loss (Eq. 1-2, Alg. 1) standardises each
projection dimension over the batch, computes the D x D cross-correlation matrix C of the two views and pushes
it to the identity: C_ii -> 1 makes the projection invariant to the distortions, C_ij -> 0 (weighted by lambda)
decorrelates its dimensions. No negatives, no momentum encoder, no predictor, no stop-gradient and no per-step
side effect: both branches are the same network and get gradients. Both views run through the backbone in ONE
call (view-major), so BatchNorm normalises over the 2N images together.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ...losses.barlow_twins import barlow_twins_loss
from ..joint_embedding import JointEmbeddingModel, per_image
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead

from .configuration_barlow_twins import BarlowTwinsConfig


@dataclass
class BarlowTwinsOutput(ModelOutput):
    """
    loss: sum_i (1 - C_ii)^2 + lambda_offdiag * sum_{i != j} C_ij^2 (None when `return_loss=False`).
    embeddings: (B, 2, projection_dim) projections Z^A, Z^B of both views (before the batch standardisation
        that the loss applies).
    pooled_features: (B, 2, D) encoder representations (the [CLS] token for ViT, global average pooling for conv
        backbones): what downstream tasks use.
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class BarlowTwinsForPreTraining(JointEmbeddingModel):
    config_class = BarlowTwinsConfig
    base_model_prefix = "barlow_twins"

    def __init__(self, config: BarlowTwinsConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.projector = ProjectionHead.barlow_twins(
            feature_dim(config.backbone_config), config.projection_hidden_dim, config.projection_dim
        )
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> BarlowTwinsOutput:
        h, z = self.project_views(pixel_values)
        z1, z2 = z.chunk(2)
        loss = None
        if return_loss:
            loss = barlow_twins_loss(
                z1, z2, lambda_offdiag=self.config.lambda_offdiag, eps=self.config.standardization_eps,
                gather_distributed=self.config.gather_distributed,
            )
        return BarlowTwinsOutput(loss=loss, embeddings=per_image(z, 2), pooled_features=per_image(h, 2))


__all__ = ["BarlowTwinsForPreTraining", "BarlowTwinsOutput"]
