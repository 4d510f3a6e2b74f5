"""SimMIM around a stock transformers ViT or Swin backbone.

Xie et al., "SimMIM: A Simple Framework for Masked Image Modeling", CVPR 2022 (arXiv:2111.09886), Sec. 3.

Random square mask patches (32 px, 60% of them) are masked; the encoder sees the whole image with the patch
embeddings inside them replaced by a learnable mask token (so, unlike MAE, it processes every patch). Its last
feature map (one token per `encoder_stride` pixels: the patch size for ViT, 32 for Swin) goes through a
one-layer prediction head, a 1x1 convolution to `stride**2 * channels` values per token, rearranged into the
image by pixel shuffle (the reference code's decoder). The loss is the L1 distance to the normalised input pixels,
averaged over the pixels of the masked patches only.

The encoder is exported as its native class (the mask token belongs to this class, not to the backbone).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...losses.masked_reconstruction import masked_l1_loss
from ..image_method import ImageMethodModel
from ..method_model import ImagePreview
from ...nn.backbone import build_backbone
from ...nn.masking import encode_with_mask_token, mask_token_width, patch_aligned_random_masking
from ...nn.patches import patch_mask_to_pixels, patchify

from .configuration_simmim import SimMIMConfig


@dataclass
class SimMIMOutput(ModelOutput):
    """
    loss: L1 on the pixels of the masked patches (None when `return_loss=False`).
    reconstruction: (B, C, H, W) the predicted (normalised) image, every pixel.
    bool_masked_pos: (B, N) True for the masked backbone patches.
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    bool_masked_pos: torch.BoolTensor | None = None


class SimMIMForPreTraining(ImageMethodModel):
    config_class = SimMIMConfig
    base_model_prefix = "simmim"

    def __init__(self, config: SimMIMConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, mask_token_width(config.backbone_config)))
        stride = config.encoder_stride
        # the one-layer head: a linear map of each output token to the stride x stride pixels it covers
        self.head = nn.Conv2d(config.backbone_config.hidden_size, stride**2 * config.num_channels, kernel_size=1)
        self.pixel_shuffle = nn.PixelShuffle(stride)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # SimMIM's own parameters: truncated normal (std 0.02) mask token (reference) and head, zero bias. (The
        # backbone is a PreTrainedModel that initialises itself.)
        if module is self:
            for weight in (self.mask_token, self.head.weight):
                init.trunc_normal_(weight, std=self.config.initializer_range)
            init.zeros_(self.head.bias)

    def random_mask(self, batch_size: int, device: torch.device,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """SimMIM's random mask for a batch: (B, N) bool over the backbone's patches. A `generator` (a CPU one) draws
        it on the CPU, reproducibly."""
        config = self.config
        mask = patch_aligned_random_masking(batch_size, config.image_size, config.mask_patch_size, config.patch_size,
                                            config.mask_ratio, device="cpu" if generator is not None else device,
                                            generator=generator)
        return mask.to(device)

    def reconstruct(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """Encode the masked image and predict every pixel: (B, C, H, W)."""
        hidden = encode_with_mask_token(self.backbone, pixel_values, bool_masked_pos, self.mask_token)
        side = pixel_values.shape[-1] // self.config.encoder_stride
        tokens = hidden[:, -side * side:]   # the output tokens of the patches (ViT: without [CLS])
        feature_map = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)
        return self.pixel_shuffle(self.head(feature_map))

    @torch.no_grad()
    def preview(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> ImagePreview:
        """The card's reconstruction plot: mask `pixel_values` (B, C, H, W, normalised inputs) as in training (random
        masks drawn from the CPU `generator`) and predict every pixel.

        `hidden` is True inside the masked patches; the prediction is in the normalisation of `pixel_values` (SimMIM
        regresses the normalised pixels directly, so no mapping)."""
        bool_masked_pos = self.random_mask(pixel_values.shape[0], pixel_values.device, generator).bool()
        reconstruction = self.reconstruct(pixel_values, bool_masked_pos).float()
        height, width = pixel_values.shape[-2:]
        return ImagePreview(reconstruction=reconstruction,
                            hidden=patch_mask_to_pixels(bool_masked_pos, self.config.patch_size, height, width))

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None,
                return_loss: bool = True, **kwargs) -> SimMIMOutput:
        """pixel_values: (B, C, H, W) normalised images (also the target); bool_masked_pos: (B, N) the backbone
        patches to mask (default: drawn as in the paper)."""
        if bool_masked_pos is None:
            bool_masked_pos = self.random_mask(pixel_values.shape[0], pixel_values.device)
        reconstruction = self.reconstruct(pixel_values, bool_masked_pos)
        loss = None
        if return_loss:
            patch = self.config.patch_size
            loss = masked_l1_loss(patchify(reconstruction, patch), patchify(pixel_values, patch), bool_masked_pos)
        return SimMIMOutput(loss=loss, reconstruction=reconstruction, bool_masked_pos=bool_masked_pos)


__all__ = ["SimMIMForPreTraining", "SimMIMOutput"]
