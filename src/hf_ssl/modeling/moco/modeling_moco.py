"""MoCo v2 and v3 around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

MoCo v2 (Chen, Fan, Girshick, He 2020, arXiv:2003.04297, on He et al., CVPR 2020): the query q = g(f(x1)) of one
view is scored against its key k = g_m(f_m(x2)), computed without gradient by the momentum (key) encoder, and
against a queue of K keys of earlier batches (InfoNCE, positive at index 0). The keys of this batch join the
queue after the step: they are staged in `forward` and committed by `on_optimizer_step`, after the EMA, so the
loss always sees the queue as it was before this step's keys (the reference enqueues after the logits).

MoCo v3 (Chen, Xie, He, ICCV 2021, arXiv:2104.02057, Alg. 1): no queue; a predictor on the query side,
q_i = p(g(f(x_i))), the momentum encoder gives k_i = g_m(f_m(x_i)), and the loss is the symmetric
ctr(q1, k2) + ctr(q2, k1) where the candidates of each query are the keys of the (global) batch, times 2 tau.
The momentum coefficient follows a cosine from 0.99 to 1.

Each view goes through an encoder as its own batch, as in the reference code (BatchNorm statistics per view; in
MoCo v2 query and key views go through different encoders anyway). The exported encoder is the online (query)
backbone f, as in both papers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from ...losses.info_nce import info_nce_loss
from ..joint_embedding import JointEmbeddingModel
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead
from ...nn.momentum import copy_frozen, cosine_momentum, ema_update
from ...nn.queue import EmbeddingQueue

from .configuration_moco import MoCoConfig


@dataclass
class MoCoOutput(ModelOutput):
    """
    loss: InfoNCE (None when `return_loss=False`).
    embeddings: (B, V_q, projection_dim) queries q (v3: predictor outputs; v2: projector outputs), not normalised,
        for the views that went through the query encoder: both (v3, or `symmetric`), else view 1 only (V_q = 1).
    key_embeddings: (B, V_q, projection_dim) the momentum encoder's key for each query: that of the OTHER view
        (query of view 1 -> key of view 2, ...). None when `return_loss=False`.
    pooled_features: (B, V_q, D) backbone representations f(x) of the query views (the [CLS] token for ViT, global
        average pooling for conv backbones): what downstream tasks use.
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    # Not `keys`: a ModelOutput is a dict, and a field of that name hides dict.keys(), which pytree flattening (the
    # FLOP counter of `hf-ssl benchmark`, torch.compile) and `to_tuple` call.
    key_embeddings: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class MoCoForPreTraining(JointEmbeddingModel):
    config_class = MoCoConfig
    base_model_prefix = "moco"

    def __init__(self, config: MoCoConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        features = feature_dim(config.backbone_config)
        if config.version == 2:
            self.projector = ProjectionHead.moco_v2(features, config.projection_hidden_dim, config.projection_dim)
            self.predictor = None
            self.queue = EmbeddingQueue(config.queue_size, config.projection_dim, random_init=True)
        else:
            self.projector = ProjectionHead.moco_v3_projector(
                features, config.projection_hidden_dim, config.projection_dim, config.projection_num_layers)
            self.predictor = ProjectionHead.moco_v3_predictor(
                config.projection_dim, config.prediction_hidden_dim, config.projection_dim)
            self.queue = None
        # The key (momentum) encoder: backbone + projector, never the predictor (v3 Alg. 1).
        self.momentum_backbone = copy_frozen(self.backbone)
        self.momentum_projector = copy_frozen(self.projector)
        self.post_init()  # also makes the momentum encoder equal to the online one, and freezes it

    def momentum_pairs(self):
        return [(self.momentum_backbone, self.backbone), (self.momentum_projector, self.projector)]

    def freeze_untrained_parts(self) -> None:
        """`requires_grad=False` on what the optimizer must not touch: the momentum encoder (moved only by the
        EMA) and, with `freeze_patch_embedding`, the ViT patch projection (MoCo v3 Sec. 4.2: a fixed random patch
        projection stabilises training, the reference `stop_grad_conv1`)."""
        super().freeze_untrained_parts()
        if self.config.freeze_patch_embedding:
            self.backbone.embeddings.patch_embeddings.requires_grad_(False)

    def current_momentum(self, progress: float) -> float:
        """m after the fraction `progress` of training: a cosine from `momentum` to `final_momentum` (v3's
        `adjust_moco_momentum`); constant when they are equal (v2)."""
        return cosine_momentum(progress, 1.0, base=self.config.momentum, final=self.config.final_momentum)

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """Once per optimizer step, after it (`OptimizerStepCallback`): move the key encoder towards the query
        encoder, then (v2) enqueue the keys staged by this step's forward passes, of every process, once."""
        momentum = self.current_momentum(progress)
        for target, online in self.momentum_pairs():
            ema_update(target, online, momentum)
        if self.queue is not None:
            self.queue.commit(gather_distributed=self.config.gather_distributed)

    def query(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) -> (queries, backbone features) through the online encoder (and v3's predictor)."""
        features = self.encode(pixel_values)
        embeddings = self.projector(features)
        if self.predictor is not None:
            embeddings = self.predictor(embeddings)
        return embeddings, features

    @torch.no_grad()
    def key(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> keys through the momentum encoder, without gradient."""
        return self.momentum_projector(self.encode(pixel_values, self.momentum_backbone))

    def contrast(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """One direction of the loss. v2: against the positive key and the queue as it is now (this step's keys
        are only staged); per process. v3: against the keys of the (gathered) batch, times 2 tau."""
        config = self.config
        if self.queue is not None:
            return info_nce_loss(query, key, queue=self.queue.embeddings, temperature=config.temperature)
        return info_nce_loss(query, key, temperature=config.temperature, scale_by_temperature=True,
                             gather_distributed=config.gather_distributed)

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> MoCoOutput:
        views = self.stack_views(pixel_values, 2).chunk(2)
        query_views = (0, 1) if self.config.symmetric else (0,)
        queries, features = zip(*(self.query(views[v]) for v in query_views))
        self.last_embeddings = torch.cat(queries).detach()
        loss, keys = None, None
        if return_loss:
            keys = [self.key(views[1 - v]) for v in query_views]  # each query's positive: the other view
            losses = [self.contrast(q, k) for q, k in zip(queries, keys)]
            # v3: the sum of the two directions (Alg. 1); v2: one direction, or the mean of two.
            loss = sum(losses) if self.queue is None else sum(losses) / len(losses)
            if self.queue is not None and self.training:
                # Enqueued by on_optimizer_step once per optimizer step (also with gradient accumulation); not from
                # evaluation forwards. Unit vectors, as the reference enqueues.
                for k in keys:
                    self.queue.stage(F.normalize(k, dim=1))
        return MoCoOutput(
            loss=loss,
            embeddings=torch.stack(queries, dim=1),
            key_embeddings=None if keys is None else torch.stack(keys, dim=1),
            pooled_features=torch.stack(features, dim=1),
        )


__all__ = ["MoCoForPreTraining", "MoCoOutput"]
