"""SimCLR around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020
(arXiv:2002.05709).

Two augmented views of every image go through the same encoder f (the backbone, what gets exported) and
projection head g (this class's own weights, discarded after pretraining); NT-Xent pulls the two projections
of an image together and pushes them away from the other 2N - 2 projections of the batch (Alg. 1). Both views
run through the backbone in ONE call (view-major: all first views, then all second views), so BatchNorm in a
conv backbone and in g normalises over the 2N images together, as the paper's global BN does on one device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ..joint_embedding import JointEmbeddingModel, per_image
from ...losses.nt_xent import nt_xent_loss
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead

from .configuration_simclr import SimCLRConfig


@dataclass
class SimCLROutput(ModelOutput):
    """
    loss: NT-Xent over the 2B projections (None when `return_loss=False`).
    embeddings: (B, 2, projection_dim) projections z = g(h) of both views (before L2 normalisation).
    pooled_features: (B, 2, D) encoder representations h = f(x) (the [CLS] token for ViT, global average
        pooling for conv backbones): what downstream tasks use.
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class SimCLRForPreTraining(JointEmbeddingModel):
    config_class = SimCLRConfig
    base_model_prefix = "simclr"

    def __init__(self, config: SimCLRConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.projector = ProjectionHead.simclr(
            feature_dim(config.backbone_config), config.projection_hidden_dim, config.projection_dim
        )
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> SimCLROutput:
        h, z = self.project_views(pixel_values)
        z1, z2 = z.chunk(2)
        loss = None
        if return_loss:
            loss = nt_xent_loss(z1, z2, self.config.temperature, gather_distributed=self.config.gather_distributed)
        return SimCLROutput(
            loss=loss,
            embeddings=per_image(z, 2),
            pooled_features=per_image(h, 2),
        )


__all__ = ["SimCLRForPreTraining", "SimCLROutput"]
