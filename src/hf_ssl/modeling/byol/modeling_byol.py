"""BYOL around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020
(arXiv:2006.07733).

Two networks (Fig. 2). The online network (weights theta: backbone f, projector g, predictor q) is trained;
the target network (weights xi: a copy of f and g, no predictor) is not: it receives no gradient (stop-gradient
in Eq. 2) and after each optimizer step moves towards the online one, xi <- tau xi + (1 - tau) theta, with tau
rising from tau_base to 1 along a cosine (Sec. 3.3). That EMA runs from `on_optimizer_step`, which
`OptimizerStepCallback` calls once per optimizer step, never from `forward` (which runs once per micro-batch
under gradient accumulation).

The loss (Eq. 2, symmetrised as L + L~): the online prediction of each view regresses the target projection of
the other view, byol_loss(q(z1), z2') + byol_loss(q(z2), z1'), each 2 - 2 cos. Both views run through each
network in ONE call (view-major), so BatchNorm normalises over the 2B images together; the reference code
runs the two views separately (BN over B images each), which in eval mode gives the same outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from ...losses.negative_cosine import byol_loss
from ..joint_embedding import JointEmbeddingModel, per_image
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead
from ...nn.momentum import copy_frozen, cosine_momentum, ema_update

from .configuration_byol import BYOLConfig


@dataclass
class BYOLOutput(ModelOutput):
    """
    loss: byol_loss(p1, z2') + byol_loss(p2, z1'), in [0, 8] (None when `return_loss=False`).
    embeddings: (B, 2, projection_dim) online projections z = g(f(x)) of both views.
    predictions: (B, 2, projection_dim) online predictions p = q(z).
    target_embeddings: (B, 2, projection_dim) target projections z' = g_xi(f_xi(x)), without gradient (None when
        `return_loss=False`: the target is only needed for the loss).
    pooled_features: (B, 2, D) online encoder representations y = f(x) (the [CLS] token for ViT, global
        average pooling for conv backbones): what downstream tasks use.
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    predictions: torch.FloatTensor | None = None
    target_embeddings: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class BYOLForPreTraining(JointEmbeddingModel):
    config_class = BYOLConfig
    base_model_prefix = "byol"

    def __init__(self, config: BYOLConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.projector = ProjectionHead.byol(
            feature_dim(config.backbone_config), config.projection_hidden_dim, config.projection_dim
        )
        self.predictor = ProjectionHead.byol(config.projection_dim, config.prediction_hidden_dim, config.projection_dim)
        # The target network: f and g only (the predictor is what makes the architecture asymmetric, Sec. 3.1).
        self.target_backbone = copy_frozen(self.backbone)
        self.target_projector = copy_frozen(self.projector)
        self.post_init()  # also makes the target equal to the online network (xi = theta at the start), frozen

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]

    def target_momentum(self, progress: float) -> float:
        """tau at `progress` = k / K in [0, 1] of training (Sec. 3.3): tau_base at 0, 1 at the end."""
        return cosine_momentum(progress, 1.0, base=self.config.base_momentum, final=1.0)

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """The target EMA after an optimizer step: xi <- tau xi + (1 - tau) theta with tau = `target_momentum`;
        BatchNorm running statistics are copied from the online network. `OptimizerStepCallback` passes
        progress = global_step / max_steps, so the first update uses tau at k = 1 (the reference code's k = 0;
        the difference is 1 / K of the schedule)."""
        momentum = self.target_momentum(progress)
        for target, online in self.momentum_pairs():
            ema_update(target, online, momentum)

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> BYOLOutput:
        views = self.stack_views(pixel_values, 2)
        y = self.encode(views)
        z = self.projector(y)
        p = self.predictor(z)
        self.last_embeddings = z.detach()
        loss = target_z = None
        if return_loss:
            # The stop-gradient of Eq. 2: no graph is built through the target at all (byol_loss also detaches).
            with torch.no_grad():
                target_z = self.target_projector(self.encode(views, backbone=self.target_backbone))
            p1, p2 = p.chunk(2)
            target_z1, target_z2 = target_z.chunk(2)
            loss = byol_loss(p1, target_z2) + byol_loss(p2, target_z1)
        return BYOLOutput(
            loss=loss,
            embeddings=per_image(z, 2),
            predictions=per_image(p, 2),
            target_embeddings=None if target_z is None else per_image(target_z, 2),
            pooled_features=per_image(y, 2),
        )


__all__ = ["BYOLForPreTraining", "BYOLOutput"]
