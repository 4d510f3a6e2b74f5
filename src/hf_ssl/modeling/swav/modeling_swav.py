"""SwAV around a stock transformers backbone (ResNet, ViT, ConvNeXt, ...).

Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS 2020
(arXiv:2006.09882).

Every crop of an image goes through the encoder (the backbone, what gets exported), a projection MLP and L2
normalisation to z, and is scored against K trainable prototypes: z^T c_k (Sec. 3.1). The codes q of the two
global crops are soft cluster assignments that Sinkhorn-Knopp makes equipartitioned over the batch (Eq. 3);
each crop then predicts the code of the other crop(s) from its own scores, softmax(z^T c / tau) (Eq. 1-2,
"swapped prediction"). Multi-crop (Sec. 3.2): the local low-resolution crops predict the global crops' codes
but get none of their own.

As the reference model's forward does (it groups the crops by size), the backbone runs once per resolution
group (the 2 global crops together, then all local crops together: BatchNorm of a conv backbone normalises
within each group), and the projection MLP once on all crops (its BatchNorm sees every crop).

Per optimizer step, `on_optimizer_step` (called by `OptimizerStepCallback`) re-normalises the prototypes to the
unit sphere (the reference does it before each forward: the same thing, one step earlier) and commits the features
staged for the optional queue. The position in training that `MethodModel` records after each step freezes the
prototypes during the first `freeze_prototypes_steps` steps and starts the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...losses.swav import sinkhorn_knopp, swav_loss
from ..joint_embedding import NUM_GLOBAL_CROPS, JointEmbeddingModel, per_image
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead, Prototypes
from ...nn.queue import EmbeddingQueue

from .configuration_swav import SwAVConfig

# The two global crops get codes (the reference `crops_for_assign = [0, 1]`).


@dataclass
class SwAVOutput(ModelOutput):
    """
    loss: the swapped-prediction loss over all crops (None when `return_loss=False`).
    embeddings: (B, V, projection_dim) L2-normalised projections z of every crop, the 2 global crops first.
    prototype_scores: (B, V, num_prototypes) scores z^T c_k of every crop.
    codes: (B, 2, num_prototypes) the Sinkhorn-Knopp codes q of the two global crops (rows sum to 1).
    pooled_features: (B, V, D) encoder representations of every crop (the [CLS] token for ViT, global average
        pooling for conv backbones): what downstream tasks use.
    """

    loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    prototype_scores: torch.FloatTensor | None = None
    codes: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class SwAVForPreTraining(JointEmbeddingModel):
    config_class = SwAVConfig
    base_model_prefix = "swav"

    def __init__(self, config: SwAVConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.projector = ProjectionHead(feature_dim(config.backbone_config), config.projection_hidden_dim,
                                        config.projection_dim, num_layers=2)
        self.prototypes = Prototypes(config.projection_dim, config.num_prototypes)
        # One FIFO of earlier z per global crop, as the reference's queue[i] per crop in crops_for_assign.
        self.queues = nn.ModuleList(
            EmbeddingQueue(config.queue_length, config.projection_dim, random_init=False)
            for _ in range(NUM_GLOBAL_CROPS)
        ) if config.queue_length > 0 else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, Prototypes):
            # Unit vectors in uniformly random directions (a normal draw, normalised): the reference normalises
            # the prototypes before every forward, so they start on the sphere too.
            init.normal_(module.weight, std=1.0)
            init.copy_(module.weight, F.normalize(module.weight, dim=1))
            return
        super()._init_weights(module)

    @property
    def prototypes_frozen(self) -> bool:
        """True during the first `freeze_prototypes_steps` optimizer steps (the reference cancels the prototypes'
        gradients while `iteration < freeze_prototypes_niters`)."""
        return int(self.num_optimizer_steps) < self.config.freeze_prototypes_steps

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """The per-optimizer-step side effects (called by `OptimizerStepCallback` after each step): re-normalise
        the prototypes and enqueue the features staged by this step's forward passes."""
        self.prototypes.normalize_()
        if self.queues is not None:
            for queue in self.queues:
                # Each process keeps its own queue, as the reference does: Sinkhorn-Knopp already sums over the
                # processes, so a gathered queue would count every row world_size times.
                queue.commit(gather_distributed=False)

    def forward(self, pixel_values: torch.Tensor, local_pixel_values: torch.Tensor | None = None,
                return_loss: bool = True, **kwargs) -> SwAVOutput:
        """pixel_values: (B, 2, C, H, W) the two global crops; local_pixel_values: (B, V_local, C, h, w) the
        local crops (absent with `num_local_crops = 0`)."""
        batch = pixel_values.shape[0]
        features, num_views = self.encode_multi_crop(pixel_values, local_pixel_values)  # view-major, globals first
        z = F.normalize(self.projector(features), dim=1)
        scores = F.linear(z, self._prototype_weight())
        self.last_embeddings = z[: NUM_GLOBAL_CROPS * batch].detach()

        loss = codes = None
        if return_loss:
            scores_per_view = scores.chunk(num_views)
            z_per_view = z.chunk(num_views)
            codes_per_view = {i: self.codes(scores_per_view[i], i) for i in range(NUM_GLOBAL_CROPS)}
            loss = swav_loss(scores_per_view, codes_per_view, self.config.temperature)
            codes = torch.stack([codes_per_view[i] for i in range(NUM_GLOBAL_CROPS)], dim=1)
            if self.training and self.queues is not None and float(self.progress) >= self.config.queue_start:
                for i, queue in enumerate(self.queues):
                    queue.stage(z_per_view[i])  # enqueued by on_optimizer_step, once per optimizer step
        return SwAVOutput(
            loss=loss,
            embeddings=per_image(z, num_views),
            prototype_scores=per_image(scores, num_views),
            codes=codes,
            pooled_features=per_image(features, num_views),
        )

    @torch.no_grad()
    def codes(self, scores: torch.Tensor, crop_index: int) -> torch.Tensor:
        """(B, K) codes of global crop `crop_index` from its prototype scores: Sinkhorn-Knopp over the batch (of all
        processes with `gather_distributed`), preceded by the queued features' scores once that queue is full
        (the reference prepends queue[i] @ prototypes^T and keeps the last B rows)."""
        batch = scores.shape[0]
        if self.queues is not None and self.queues[crop_index].is_full:
            queued = F.linear(self.queues[crop_index].embeddings.to(scores.dtype), self.prototypes.weight.to(scores.dtype))
            scores = torch.cat([queued, scores])
        codes = sinkhorn_knopp(scores, self.config.sinkhorn_epsilon, self.config.sinkhorn_iterations,
                               gather_distributed=self.config.gather_distributed)
        return codes[-batch:]

    def _prototype_weight(self) -> torch.Tensor:
        """The prototypes as used by the forward: while they are frozen, their gradient is zeroed by a hook on a
        view of the weight, registered afresh at every forward (a hook on the Parameter itself would be lost
        when `from_pretrained` replaces the parameters). Zero gradients leave the prototypes unchanged under
        SGD and Adam; AdamW's decoupled weight decay only shrinks them, which the per-step normalisation undoes."""
        weight = self.prototypes.weight
        if self.prototypes_frozen and weight.requires_grad and torch.is_grad_enabled():
            weight = weight.view_as(weight)
            weight.register_hook(torch.zeros_like)
        return weight



__all__ = ["SwAVForPreTraining", "SwAVOutput"]
