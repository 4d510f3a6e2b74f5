"""What joint-embedding methods (SimCLR, MoCo, BYOL, SimSiam, SwAV, VICReg, Barlow Twins, DINO) share on top of
`image_method`: the input-size default of conv backbones, the cross-process switch, the initialisation of
their heads, and turning a (B, V, C, H, W) batch of views into one backbone call. A method's folder adds its
heads, its loss and its per-step hook (`momentum_update`)."""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import initialization as init

from hf_ssl.modeling.image_method import DEFAULT_IMAGE_SIZE, ImageMethodConfig, ImageMethodModel
from hf_ssl.nn.backbone import pooled_features
from hf_ssl.nn.momentum import ema_update


@strict
class JointEmbeddingConfig(ImageMethodConfig):
    r"""
    gather_distributed (`bool`, defaults to `True`): losses that compare samples across the batch use the
        embeddings of all processes (the paper's global batch), gathered with gradient.
    initializer_range (`float`, defaults to 0.01): std of the normal init of the heads' linear layers.
    """

    gather_distributed: bool = True
    initializer_range: float = 0.01

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # One source of truth for the resolution: the backbone config (ViT needs it there for its position
        # embeddings; for conv backbones it is an extra attribute that round-trips through config.json).
        if getattr(self.backbone_config, "image_size", None) is None:
            self.backbone_config.image_size = DEFAULT_IMAGE_SIZE


class JointEmbeddingModel(ImageMethodModel):
    """Base of the joint-embedding models: `self.backbone` (exported) plus heads owned by the subclass.

    `last_embeddings` (a detached (N, D) tensor a forward stores) feeds `CollapseMonitorCallback`.
    """

    def __init__(self, config: JointEmbeddingConfig):
        super().__init__(config)
        self.last_embeddings: torch.Tensor | None = None

    def _init_weights(self, module: nn.Module) -> None:
        # Only the heads are this class's own; the backbone is initialised by its own class.
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

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(momentum copy, online module) pairs that `ema_update` moves together: MoCo's key encoder and head,
        BYOL's target, DINO's teacher. Methods without momentum encoders have none."""
        return []

    @torch.no_grad()
    def reset_momentum_encoders(self) -> None:
        """Make every momentum copy equal to its online module (BYOL, MoCo and DINO start that way); called
        after the online backbone's weights change outside training (`load_encoder_weights`)."""
        for target, online in self.momentum_pairs():
            ema_update(target, online, momentum=0.0)

    def load_encoder_weights(self, checkpoint: str) -> None:
        super().load_encoder_weights(checkpoint)
        self.reset_momentum_encoders()

    def encode(self, pixel_values: torch.Tensor, backbone: nn.Module | None = None) -> torch.Tensor:
        """(N, C, H, W) -> (N, D) representations: the [CLS] token for token backbones, the pooler otherwise.
        `backbone` defaults to the online one; pass a momentum copy (MoCo's key encoder, a teacher) to use it."""
        return pooled_features(self.backbone if backbone is None else backbone, pixel_values, "cls")

    def stack_views(self, pixel_values: torch.Tensor, num_views: int | None = None) -> torch.Tensor:
        """(B, V, C, H, W) -> (V * B, C, H, W), view-major: all first views, then all second views, ..., so that
        one backbone call sees every view (BatchNorm normalises over all of them, as with one device's global
        BN) and `.chunk(V)` gives the outputs back per view. Checks the number of views when given."""
        if pixel_values.dim() != 5 or (num_views is not None and pixel_values.shape[1] != num_views):
            views = "several views" if num_views is None else f"{num_views} views"
            raise ValueError(
                f"{type(self).__name__} expects {views} per image, pixel_values of shape (B, V, C, H, W); "
                f"got {tuple(pixel_values.shape)}"
            )
        return pixel_values.transpose(0, 1).flatten(0, 1)


def per_image(tensor: torch.Tensor, num_views: int) -> torch.Tensor:
    """(V * B, ...) view-major -> (B, V, ...), the layout of a method's output fields."""
    return tensor.unflatten(0, (num_views, -1)).transpose(0, 1)


__all__ = ["JointEmbeddingConfig", "JointEmbeddingModel", "per_image"]
