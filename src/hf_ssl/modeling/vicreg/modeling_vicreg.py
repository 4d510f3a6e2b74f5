"""VICReg around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
ICLR 2022 (arXiv:2105.04906).

Two augmented views of every image go through the same encoder f_theta (the backbone, what gets exported) and
expander h_phi (this class's own weights, discarded after pretraining); the loss on the expanded embeddings Z,
Z' (Sec. 3, Alg. 1) pulls the two views of an image together (invariance), keeps the standard deviation of
every embedding dimension over the batch above gamma (variance) and decorrelates the dimensions (covariance).
There are no negatives, no momentum encoder, no stop-gradient and no per-step side effect: both branches are
the same network and get gradients. Both views run through the backbone in ONE call (view-major), so
BatchNorm normalises over the 2N images together.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ...losses.vicreg import vicreg_loss
from ..joint_embedding import JointEmbeddingModel, per_image
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead

from .configuration_vicreg import VICRegConfig


@dataclass
class VICRegOutput(ModelOutput):
    """
    loss: lambda * invariance_loss + mu * variance_loss + nu * covariance_loss (None when `return_loss=False`).
    invariance_loss: s(Z, Z'), unweighted: mean squared error between the two views' embeddings, averaged over
        samples and dimensions (Alg. 1).
    variance_loss: v(Z) + v(Z'), unweighted: mean over dimensions of relu(gamma - sqrt(Var + eps)), both views.
    covariance_loss: c(Z) + c(Z'), unweighted: squared off-diagonal covariances / D, both views.
    embeddings: (B, 2, projection_dim) expander outputs Z, Z' of both views.
    pooled_features: (B, 2, D) encoder representations Y = f(X) (the [CLS] token for ViT, global average pooling
        for conv backbones): what downstream tasks use.
    """

    loss: torch.FloatTensor | None = None
    invariance_loss: torch.FloatTensor | None = None
    variance_loss: torch.FloatTensor | None = None
    covariance_loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class VICRegForPreTraining(JointEmbeddingModel):
    """Backbone + VICReg expander. After each training forward, `last_embeddings` (for the collapse monitor) and
    `last_loss_terms` (the three unweighted terms, detached: `{"invariance_loss", "variance_loss",
    "covariance_loss"}`) hold the values of the last micro-batch, for a callback to log."""

    config_class = VICRegConfig
    base_model_prefix = "vicreg"

    def __init__(self, config: VICRegConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.projector = ProjectionHead.vicreg(
            feature_dim(config.backbone_config), config.projection_hidden_dim, config.projection_dim
        )
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> VICRegOutput:
        y, z = self.project_views(pixel_values)
        z1, z2 = z.chunk(2)
        terms = None
        if return_loss:
            config = self.config
            terms = vicreg_loss(
                z1, z2, invariance_weight=config.invariance_weight, variance_weight=config.variance_weight,
                covariance_weight=config.covariance_weight, gamma=config.target_std, eps=config.variance_eps,
                gather_distributed=config.gather_distributed,
            )
            # Trainer logs only `loss`, which hides which term dominates (a collapsing run shows a rising variance
            # term first); keep the unweighted terms, detached, for a callback to log.
            self.last_loss_terms = {
                "invariance_loss": terms.invariance.detach(),
                "variance_loss": terms.variance.detach(),
                "covariance_loss": terms.covariance.detach(),
            }
        return VICRegOutput(
            loss=None if terms is None else terms.loss,
            invariance_loss=None if terms is None else terms.invariance,
            variance_loss=None if terms is None else terms.variance,
            covariance_loss=None if terms is None else terms.covariance,
            embeddings=per_image(z, 2),
            pooled_features=per_image(y, 2),
        )


__all__ = ["VICRegForPreTraining", "VICRegOutput"]
