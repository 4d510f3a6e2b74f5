"""Colorful Image Colorization around a stock transformers backbone (ResNet, ConvNeXt, ViT, ...).

Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016 (arXiv:1603.08511).

The pretext task (Sec. 2): from the lightness L of a CIE Lab image, predict its colour. The ab plane is quantised
into bins (grid 10, the cells of the sRGB gamut) and the network predicts, at every pixel, a distribution over them:
a classification, not a regression, so that multimodal colours (a shirt can be red or blue) do not average to gray.

One step, as the paper's algorithm:
1. the RGB batch -> Lab; the backbone sees L alone, as the gray image (L, 0, 0) in RGB on all its input channels and
   in the model's input normalisation (the paper feeds L; here the exported backbone keeps its 3-channel RGB
   interface, and a gray photo is exactly what it was trained on);
2. a 1x1 convolution on the backbone's last feature map (conv backbones) or on its patch tokens laid on their grid
   (ViT) scores the Q bins, upsampled bilinearly to 1/`output_stride` of the input (the paper predicts at 1/4 with a
   deeper decoder; the light head keeps the representation in the exported backbone);
3. the target ab at that resolution (every `output_stride`-th pixel, as the reference `data_ab_ss` subsampling) is
   soft-encoded over its 5 nearest bins (Gaussian, sigma 5);
4. the loss is the cross-entropy to those targets, each pixel weighted by w of its nearest bin, where
   w ~ ((1 - lambda) p~ + lambda / Q)^-1 rebalances towards rare (saturated) colours (Eq. 2, 4).

The prior p of the bins is the training data's. Since a run starts from a config alone, the model counts it:
`color_counts` (a buffer, so checkpoints and OUT/ssl carry it) holds the nearest-bin counts of every target pixel
of the optimizer steps taken so far; each forward uses those counts plus its own batch's (the first step already
has a prior), and stages its batch's counts, which `on_optimizer_step` adds once per optimizer step (with gradient
accumulation, every micro-batch's). Counts, not a moving average: after one epoch the prior is exactly the
(augmented) training set's histogram, the paper's p, and it keeps converging. With several processes the batch's
counts are summed over them, so the prior is the global batch's, the same on every process.

Decoding (Sec. 2.3, the card's plot only): the annealed mean of the predicted distribution, T = 0.38, upsampled to
full resolution and joined with the input's L.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..image_method import ImageMethodModel
from ..method_model import ImagePreview
from ...losses.colorization import colorization_loss, rebalancing_weights, smoothed_prior
from ...nn.backbone import build_backbone, feature_dim, feature_map
from ...nn.color import ab_bins, annealed_mean, lab_to_rgb, lightness_to_rgb, rgb_to_lab, soft_encode
from ...nn.distributed import all_reduce_sum

from .configuration_colorization import ColorizationConfig


@dataclass
class ColorizationOutput(ModelOutput):
    """
    loss: the class-rebalanced cross-entropy to the soft-encoded ab targets (None when `return_loss=False`).
    logits: (B, Q, H / output_stride, W / output_stride) scores of the Q ab bins at every output pixel.
    lightness: (B, 1, H, W) the L channel of the input, in [0, 100].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    lightness: torch.FloatTensor | None = None


class ColorizationForPreTraining(ImageMethodModel):
    config_class = ColorizationConfig
    base_model_prefix = "colorization"

    def __init__(self, config: ColorizationConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        centres = ab_bins(config.ab_grid_size)
        # The bin centres (Q, 2), saved with the weights: OUT/ssl states which classes its head scores.
        self.register_buffer("ab_centres", centres.float())
        # Nearest-bin counts of every target pixel of the optimizer steps taken: the empirical prior p (int64: exact).
        self.register_buffer("color_counts", torch.zeros(centres.shape[0], dtype=torch.long))
        self.head = nn.Conv2d(feature_dim(config.backbone_config), centres.shape[0], kernel_size=1)
        self._staged_counts: list[torch.Tensor] = []
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Only the head is this class's own; the backbone is initialised by its own class. (The paper's network is
        # initialised with the k-means scheme of Kraehenbuehl et al.; a normal init suits a single 1x1 layer.)
        if module is self.head:
            init.normal_(module.weight, std=self.config.initializer_range)
            init.zeros_(module.bias)

    @property
    def num_bins(self) -> int:
        return self.ab_centres.shape[0]

    # --- the colour pipeline -----------------------------------------------------------------------------------

    def _normalization(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = (torch.tensor(v, dtype=torch.float32, device=like.device).view(1, -1, 1, 1)
                     for v in (self.config.image_mean, self.config.image_std))
        return mean, std

    def to_lab(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised RGB (B, 3, H, W) -> CIE Lab, in float32 whatever the model's dtype."""
        mean, std = self._normalization(pixel_values)
        return rgb_to_lab((pixel_values.float() * std + mean).clamp(0.0, 1.0))

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> the model's input normalisation."""
        mean, std = self._normalization(rgb)
        return (rgb - mean) / std

    def lightness_input(self, lightness: torch.Tensor) -> torch.Tensor:
        """What the backbone sees: the gray RGB image of L (B, 1, H, W), normalised as the model's inputs."""
        return self.normalize(lightness_to_rgb(lightness))

    def predict(self, backbone_input: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) gray input -> (B, Q, H / s, W / s) bin scores: the 1x1 head on the backbone's feature map,
        upsampled bilinearly to the output resolution."""
        features = feature_map(self.backbone, backbone_input.to(self.head.weight.dtype))
        logits = self.head(features)
        stride = self.config.output_stride
        size = (backbone_input.shape[-2] // stride, backbone_input.shape[-1] // stride)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def pixel_weights(self, nearest: torch.Tensor) -> torch.Tensor:
        """The class-rebalancing weight v of every target pixel (the weight of its nearest bin), from the prior of
        the steps taken plus this batch; stages the batch's counts (training only) for `on_optimizer_step`."""
        # the global batch's counts (a no-op in one process): every process weighs its pixels as one process reading
        # the whole batch would, and the prior's counts stay the same on every process
        counts = all_reduce_sum(torch.bincount(nearest.flatten(), minlength=self.num_bins))
        if self.training:
            self._staged_counts.append(counts.detach())
        prior = smoothed_prior(self.color_counts + counts, self.ab_centres, self.config.prior_smoothing_sigma)
        weights = rebalancing_weights(prior, self.config.rebalance_mixing)
        return weights.float()[nearest]

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """Add the nearest-bin counts staged by this step's forward passes to the prior's counts."""
        for counts in self._staged_counts:
            self.color_counts.add_(counts.to(self.color_counts.device))
        self._staged_counts.clear()

    # --- forward and the card's plot -----------------------------------------------------------------------------

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> ColorizationOutput:
        lab = self.to_lab(pixel_values)
        lightness = lab[:, :1]
        logits = self.predict(self.lightness_input(lightness))
        loss = None
        if return_loss:
            stride = self.config.output_stride
            target_ab = lab[:, 1:, ::stride, ::stride].permute(0, 2, 3, 1)  # (B, H/s, W/s, 2)
            indices, weights = soft_encode(target_ab, self.ab_centres, self.config.num_soft_neighbors,
                                           self.config.soft_encoding_sigma)
            loss = colorization_loss(logits, indices, weights, self.pixel_weights(indices[..., 0]))
        return ColorizationOutput(loss=loss, logits=logits, lightness=lightness)

    @torch.no_grad()
    def colorize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised RGB (B, 3, H, W) -> the model's colorization of its lightness, RGB in [0, 1]: the annealed mean
        (T = `annealed_mean_temperature`) of the predicted distributions, upsampled to full size, joined with L."""
        lab = self.to_lab(pixel_values)
        lightness = lab[:, :1]
        log_probs = F.log_softmax(self.predict(self.lightness_input(lightness)).float(), dim=1)
        ab = annealed_mean(log_probs, self.ab_centres.float(), self.config.annealed_mean_temperature)
        ab = F.interpolate(ab, size=lightness.shape[-2:], mode="bilinear", align_corners=False)
        return lab_to_rgb(torch.cat([lightness, ab], dim=1))

    @torch.no_grad()
    def preview(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> ImagePreview:
        """The card's plot: the original, the lightness the model saw (as gray RGB) and its colorization, both in
        the model's input normalisation. Nothing is random."""
        lightness = self.to_lab(pixel_values)[:, :1]
        return ImagePreview(
            reconstruction=self.normalize(self.colorize(pixel_values)),
            model_input=self.lightness_input(lightness),
            row_labels=("original", "lightness (input)", "colorized"),
        )


__all__ = ["ColorizationForPreTraining", "ColorizationOutput"]
