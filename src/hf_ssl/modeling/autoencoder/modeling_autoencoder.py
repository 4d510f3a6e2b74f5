"""The autoencoder of the lecture notes (seed 004), around a stock transformers backbone, and the base of the other
reconstruction pretext tasks (the denoising autoencoder, the context encoder).

    x_in = prepare_input(x)              the autoencoder: x itself; a subclass corrupts it or hides a region
    e = W pool(backbone(x_in))           the linear bottleneck on the pooled features (l = bottleneck_dim)
    x_hat = decoder(e)                   `ConvDecoder`: up-convolutions back to (C, H, W)
    loss = mean over all pixels of (x_hat - x)^2, in the model's input normalisation, against the CLEAN x

The backbone is what gets exported; the bottleneck and the decoder are discarded after pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..image_method import ImageMethodModel
from ..method_model import ImagePreview
from ...losses.pixel_reconstruction import pixel_mse_loss
from ...nn.backbone import build_backbone, feature_dim, pooled_features
from ...nn.heads import reset_batch_norm
from ...nn.pixel_decoder import ConvDecoder

from .configuration_autoencoder import AutoencoderConfig


@dataclass
class ReconstructionOutput(ModelOutput):
    """
    loss: the reconstruction loss (plus the adversarial terms of a context encoder that has them).
    reconstruction: (B, C, H, W) the decoder's prediction of the whole clean image, in the input normalisation.
    model_input: (B, C, H, W) what the encoder saw (the image itself, its corrupted copy, the image with a region
        filled).
    mask: (B, 1, H, W) bool, True where a pixel was hidden from the encoder (context encoder); None otherwise.
    code: (B, bottleneck_dim) the bottleneck.
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    model_input: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    code: torch.FloatTensor | None = None


class AutoencoderForPreTraining(ImageMethodModel):
    """Backbone -> pooled features -> linear bottleneck -> `ConvDecoder` -> pixels. Subclasses change what the encoder
    sees (`prepare_input`) and the loss (`objective`)."""

    config_class = AutoencoderConfig
    base_model_prefix = "autoencoder"
    # the names of the card's plot rows: the image, what the encoder saw, the decoder's output
    preview_row_labels: tuple[str, str, str] = ("original", "input", "reconstruction")

    def __init__(self, config: AutoencoderConfig):
        super().__init__(config)
        self.build_modules(config)
        self.post_init()

    def build_modules(self, config: AutoencoderConfig) -> None:
        """The encoder, the bottleneck and the decoder; a subclass adds its own modules here (before `post_init`)."""
        self.backbone = build_backbone(config.backbone_config)
        self.bottleneck = nn.Linear(feature_dim(config.backbone_config), config.bottleneck_dim)
        self.decoder = ConvDecoder(config.bottleneck_dim, config.image_size, config.num_channels, config.decoder_width)

    def _init_weights(self, module: nn.Module) -> None:
        # Only the bottleneck and the decoder are this class's own (the backbone is initialised by its own class):
        # DCGAN's N(0, 0.02) weights, zero biases, unit BatchNorm.
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            reset_batch_norm(module)

    # --- the steps of the algorithm ---------------------------------------------------------------------------

    def prepare_input(self, pixel_values: torch.Tensor,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the encoder sees, and (B, 1, H, W) bool True where it sees nothing of the image (None: everywhere
        something). The autoencoder: the image itself. Random choices come from `generator` (torch's global one when
        None)."""
        return pixel_values, None

    def objective(self, pixel_values: torch.Tensor, reconstruction: torch.Tensor,
                  hidden: torch.Tensor | None) -> torch.Tensor:
        """The loss of a reconstruction of the clean `pixel_values`: the mean squared error over every pixel value."""
        return pixel_mse_loss(reconstruction, pixel_values)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, bottleneck_dim): the linear bottleneck on the backbone's pooled features."""
        return self.bottleneck(pooled_features(self.backbone, pixel_values, self.feature_pooling))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(B, bottleneck_dim) -> (B, C, H, W) predicted pixels, in the input normalisation."""
        return self.decoder(code)

    def _check_size(self, pixel_values: torch.Tensor) -> None:
        size = self.config.image_size
        if tuple(pixel_values.shape[-2:]) != (size, size):
            raise ValueError(f"{type(self).__name__} reconstructs {size}x{size} images (its decoder's size), got "
                             f"pixel_values of shape {tuple(pixel_values.shape)}")

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> ReconstructionOutput:
        self._check_size(pixel_values)
        model_input, hidden = self.prepare_input(pixel_values)
        code = self.encode(model_input)
        reconstruction = self.decode(code)
        loss = self.objective(pixel_values, reconstruction, hidden) if return_loss else None
        return ReconstructionOutput(loss=loss, reconstruction=reconstruction, model_input=model_input, mask=hidden,
                                    code=code)

    @torch.no_grad()
    def preview(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> ImagePreview:
        """The card's plot: the image, what the encoder saw (corruptions drawn from the CPU `generator`), and the
        decoder's output. A hidden region is greyed in the input row and the prediction is pasted there."""
        self._check_size(pixel_values)
        model_input, hidden = self.prepare_input(pixel_values, generator)
        reconstruction = self.decode(self.encode(model_input))
        return ImagePreview(reconstruction=reconstruction, hidden=hidden,
                            model_input=model_input if hidden is None else None, row_labels=self.preview_row_labels)


__all__ = ["AutoencoderForPreTraining", "ReconstructionOutput"]
