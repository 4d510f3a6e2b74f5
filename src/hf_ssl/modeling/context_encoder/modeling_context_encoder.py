"""Context encoders (Pathak, Krähenbühl, Donahue, Darrell, Efros, CVPR 2016) around a stock transformers backbone:
the autoencoder whose encoder sees the image with a region filled with the mean, and whose decoder inpaints it.

    M = the hidden region (central square or random blocks); R = M grown by `overlap` px (the predicted region)
    x_in = x with M set to 0 (the mean after normalisation): the encoder never sees M
    x_hat = decoder(W pool(backbone(x_in)))
    L_rec = sum over R of w (x_hat - x)^2 / (C |R|),  w = 1 on M, `overlap_weight` on R \\ M    (Sec. 3.2, Eq. 1,
            with the reference code's overlap weighting)
    L = lambda_rec L_rec + lambda_adv L_adv  (Eq. 4)

The adversarial term (`adversarial_weight` > 0). Trainer runs one optimizer on one loss, so the discriminator D is
trained in the same forward pass, simultaneously rather than alternately (no gradient reversal): the returned loss is

    lambda_rec L_rec + lambda_adv (-log D_frozen(fake)) + [-log D(real) - log(1 - D(fake.detach()))]

where D_frozen is D called with detached parameters (`torch.func.functional_call`). The generator's term therefore
moves only the encoder and the decoder, the bracket (the discriminator's loss) moves only D, and one optimizer step
is one step of each player's own objective on the same batch (simultaneous gradient descent, e.g. Mescheder et al.,
ICML 2018). D sees the predicted central square (the paper's) or, for random blocks, the image with the predicted
regions pasted into the context. D and the decoder are discarded after pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..autoencoder.modeling_autoencoder import AutoencoderForPreTraining
from ...losses.adversarial import discriminator_loss, generator_adversarial_loss
from ...losses.pixel_reconstruction import pixel_mse_loss
from ...nn.corruption import uniform_like
from ...nn.discriminator import ConvDiscriminator

from .configuration_context_encoder import ContextEncoderConfig


class ContextEncoderForPreTraining(AutoencoderForPreTraining):
    config_class = ContextEncoderConfig
    base_model_prefix = "context_encoder"
    preview_row_labels = ("original", "masked", "inpainted")

    def build_modules(self, config: ContextEncoderConfig) -> None:
        super().build_modules(config)
        self.discriminator = None
        if config.adversarial_weight > 0:
            size = config.region_size if config.region == "center" else config.image_size
            self.discriminator = ConvDiscriminator(config.num_channels, size, config.discriminator_width)

    # --- the regions --------------------------------------------------------------------------------------------

    def _center_box(self) -> tuple[int, int]:
        """[start, end) of the predicted central square, on both axes."""
        size = self.config.region_size
        start = (self.config.image_size - size) // 2
        return start, start + size

    def region_mask(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 1, H, W) bool, True on the hidden region M: the central square shrunk by `overlap`, or
        `num_random_blocks` squares at uniformly random positions per image (drawn from `generator`)."""
        batch, _, height, width = pixel_values.shape
        device = pixel_values.device
        rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
        if self.config.region == "center":
            start, end = self._center_box()
            start, end = start + self.config.overlap, end - self.config.overlap
            inside = ((rows >= start) & (rows < end))[:, None] & ((cols >= start) & (cols < end))[None, :]
            return inside.expand(batch, 1, height, width)
        size, count = self.config.region_size, self.config.num_random_blocks
        top = (uniform_like((batch, count), pixel_values, generator) * (height - size + 1)).long()[..., None]
        left = (uniform_like((batch, count), pixel_values, generator) * (width - size + 1)).long()[..., None]
        in_rows = (rows >= top) & (rows < top + size)  # (B, blocks, H)
        in_cols = (cols >= left) & (cols < left + size)  # (B, blocks, W)
        return (in_rows[..., :, None] & in_cols[..., None, :]).any(dim=1, keepdim=True)

    def predicted_region(self, hidden: torch.Tensor) -> torch.Tensor:
        """R: the hidden region grown by `overlap` pixels (a (2 overlap + 1)-square dilation), (B, 1, H, W) bool."""
        overlap = self.config.overlap
        if overlap == 0:
            return hidden
        return F.max_pool2d(hidden.float(), 2 * overlap + 1, stride=1, padding=overlap) > 0

    def loss_weight(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W): 1 on M, `overlap_weight` on the overlap border R \\ M, 0 outside R."""
        predicted = self.predicted_region(hidden).float()
        return torch.where(hidden, torch.ones_like(predicted), predicted * self.config.overlap_weight)

    # --- the algorithm ------------------------------------------------------------------------------------------

    def prepare_input(self, pixel_values: torch.Tensor,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The image with M filled with 0, the mean of the normalised inputs: the encoder never sees M."""
        hidden = self.region_mask(pixel_values, generator)
        return pixel_values.masked_fill(hidden, 0.0), hidden

    def discriminated(self, images: torch.Tensor) -> torch.Tensor:
        """What D judges: the central square (the paper's), or the whole image for random blocks."""
        if self.config.region != "center":
            return images
        start, end = self._center_box()
        return images[..., start:end, start:end]

    def objective(self, pixel_values: torch.Tensor, reconstruction: torch.Tensor,
                  hidden: torch.Tensor) -> torch.Tensor:
        config = self.config
        reconstruction_loss = pixel_mse_loss(reconstruction, pixel_values, self.loss_weight(hidden))
        loss = config.reconstruction_weight * reconstruction_loss
        terms = {"reconstruction": reconstruction_loss.detach()}
        if self.discriminator is not None:
            predicted = self.predicted_region(hidden)
            real = self.discriminated(pixel_values)
            fake = self.discriminated(torch.where(predicted, reconstruction, pixel_values))
            d_loss = discriminator_loss(self.discriminator(real), self.discriminator(fake.detach()))
            frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
            adversarial = generator_adversarial_loss(functional_call(self.discriminator, frozen, (fake,)))
            loss = loss + config.adversarial_weight * adversarial + d_loss
            terms.update(adversarial=adversarial.detach(), discriminator=d_loss.detach())
        self.last_loss_terms = terms
        return loss


__all__ = ["ContextEncoderForPreTraining"]
