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
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from hf_ssl.modeling.image_method import ImageMethodModel
from hf_ssl.losses.nt_xent import nt_xent_loss
from hf_ssl.nn.backbone import build_backbone, feature_dim, pooled_features
from hf_ssl.nn.heads import ProjectionHead

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


class SimCLRForPreTraining(ImageMethodModel):
    config_class = SimCLRConfig
    base_model_prefix = "simclr"

    def __init__(self, config: SimCLRConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.projector = ProjectionHead.simclr(
            feature_dim(config.backbone_config), config.projection_hidden_dim, config.projection_dim
        )
        self.last_embeddings: torch.Tensor | None = None  # read by CollapseMonitorCallback
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Only the projection head is this class's own; the backbone is initialised by its own class.
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, D) representations h: the [CLS] token for token backbones, the pooler otherwise."""
        return pooled_features(self.backbone, pixel_values, "cls")

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> SimCLROutput:
        if pixel_values.dim() != 5 or pixel_values.shape[1] != 2:
            raise ValueError(
                f"SimCLR expects two views per image, pixel_values of shape (B, 2, C, H, W); got {tuple(pixel_values.shape)}"
            )
        batch_size = pixel_values.shape[0]
        # view-major: [x_1^(1) .. x_B^(1), x_1^(2) .. x_B^(2)], so chunk(2) gives back the two views
        images = pixel_values.transpose(0, 1).flatten(0, 1)
        h = self.encode(images)
        z = self.projector(h)
        self.last_embeddings = z.detach()
        z1, z2 = z.chunk(2)
        loss = None
        if return_loss:
            loss = nt_xent_loss(z1, z2, self.config.temperature, gather_distributed=self.config.gather_distributed)
        return SimCLROutput(
            loss=loss,
            embeddings=z.view(2, batch_size, -1).transpose(0, 1),
            pooled_features=h.view(2, batch_size, -1).transpose(0, 1),
        )


__all__ = ["SimCLRForPreTraining", "SimCLROutput"]
