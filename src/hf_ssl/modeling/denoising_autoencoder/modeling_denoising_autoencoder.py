"""The denoising autoencoder (Vincent, Larochelle, Bengio, Manzagol, ICML 2008) around a stock transformers backbone:
the autoencoder whose encoder sees a corrupted copy of the image and whose loss is on the clean image.

    x~ = q_D(x)                      masking / Gaussian / salt-and-pepper noise, drawn here from torch's generator
    x_hat = decoder(W pool(backbone(x~)))
    loss = mean over all pixels of (x_hat - x)^2     (the clean x)
"""

from __future__ import annotations

import torch

from ..autoencoder.modeling_autoencoder import AutoencoderForPreTraining
from ...nn.corruption import gaussian_noise, masking_noise, salt_and_pepper_noise

from .configuration_denoising_autoencoder import DenoisingAutoencoderConfig


class DenoisingAutoencoderForPreTraining(AutoencoderForPreTraining):
    config_class = DenoisingAutoencoderConfig
    base_model_prefix = "denoising_autoencoder"
    preview_row_labels = ("original", "corrupted", "denoised")

    def _normalised(self, value: float) -> torch.Tensor:
        """The pixel value `value` (in [0, 1]) in the input normalisation, per channel: (1, C, 1, 1)."""
        mean = torch.tensor(self.config.image_mean).view(1, -1, 1, 1)
        std = torch.tensor(self.config.image_std).view(1, -1, 1, 1)
        return (value - mean) / std

    def corrupt(self, pixel_values: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x~ ~ q_D(x~ | x) for the configured noise: (corrupted images, (B, C, H, W) bool mask of the components that
        were replaced; None for Gaussian noise, which changes every component)."""
        config = self.config
        if config.noise == "masking":
            return masking_noise(pixel_values, config.masking_fraction, self._normalised(0.0), generator)
        if config.noise == "salt_pepper":
            return salt_and_pepper_noise(pixel_values, config.salt_pepper_fraction, self._normalised(0.0),
                                         self._normalised(1.0), generator)
        std = config.gaussian_std / torch.tensor(config.image_std).view(1, -1, 1, 1)
        return gaussian_noise(pixel_values, std, generator), None

    def prepare_input(self, pixel_values: torch.Tensor,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        # The encoder sees something at every pixel (a corrupted value, not a blank): nothing is hidden.
        return self.corrupt(pixel_values, generator)[0], None


__all__ = ["DenoisingAutoencoderForPreTraining"]
