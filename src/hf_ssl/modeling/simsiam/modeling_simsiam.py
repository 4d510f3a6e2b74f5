"""SimSiam around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Chen and He, "Exploring Simple Siamese Representation Learning", CVPR 2021 (arXiv:2011.10566).

One network, shared by both views (Alg. 1): the encoder f = backbone + projection MLP gives z, the prediction
MLP h gives p = h(z), and the loss is D(p1, z2) / 2 + D(p2, z1) / 2 with D(p, z) = -cos(p, stopgrad(z)). The
stop-gradient on z is what prevents collapse (Sec. 4.1, Fig. 2); there is no momentum encoder, no negatives,
no per-step side effect. Both views run through the backbone in ONE call (view-major), so BatchNorm normalises
over the 2B images together; the reference code runs the two views separately (BN over B images each), which in
eval mode gives the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ...losses.negative_cosine import negative_cosine_similarity
from ..joint_embedding import JointEmbeddingModel, per_image
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead

from .configuration_simsiam import SimSiamConfig


@dataclass
class SimSiamOutput(ModelOutput):
    """
    loss: D(p1, z2) / 2 + D(p2, z1) / 2, in [-1, 1] (None when `return_loss=False`).
    embeddings: (B, 2, projection_dim) projections z = f(x) of both views (the paper's collapse indicator is
        the per-dimension std of the L2-normalised z, Sec. 4.1).
    predictions: (B, 2, projection_dim) predictions p = h(z).
    pooled_features: (B, 2, D) backbone representations (the [CLS] token for ViT, global average pooling for
        conv backbones): what downstream tasks use.
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    predictions: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class SimSiamForPreTraining(JointEmbeddingModel):
    config_class = SimSiamConfig
    base_model_prefix = "simsiam"

    def __init__(self, config: SimSiamConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.projector = ProjectionHead.simsiam_projector(
            feature_dim(config.backbone_config), config.projection_hidden_dim, config.projection_dim
        )
        self.predictor = ProjectionHead.simsiam_predictor(
            config.projection_dim, config.prediction_hidden_dim, config.projection_dim
        )
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> SimSiamOutput:
        # project_views monitors z, not p: the paper monitors the std of the normalised encoder output z (Fig. 2)
        features, z = self.project_views(pixel_values)
        p = self.predictor(z)
        loss = None
        if return_loss:
            z1, z2 = z.chunk(2)
            p1, p2 = p.chunk(2)
            # negative_cosine_similarity detaches its second argument: the stop-gradient of Alg. 1.
            loss = negative_cosine_similarity(p1, z2) / 2 + negative_cosine_similarity(p2, z1) / 2
        return SimSiamOutput(
            loss=loss,
            embeddings=per_image(z, 2),
            predictions=per_image(p, 2),
            pooled_features=per_image(features, 2),
        )


__all__ = ["SimSiamForPreTraining", "SimSiamOutput"]
