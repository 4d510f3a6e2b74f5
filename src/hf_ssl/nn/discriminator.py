"""A small image discriminator for adversarial losses (the context encoder's; Pathak et al. 2016 follow the DCGAN
discriminator): stride-2 4x4 convolutions with LeakyReLU(0.2), doubling the width, down to a map of side >= 4, then
one linear logit. Without BatchNorm: a model that calls it on real images, on detached fakes and on fakes for the
generator's term in one forward pass would otherwise mix three sets of batch statistics."""

from __future__ import annotations

import torch
from torch import nn

from .pixel_decoder import upsampling_stages


class ConvDiscriminator(nn.Module):
    """(B, num_channels, image_size, image_size) -> (B,) logits of "real"."""

    def __init__(self, num_channels: int, image_size: int, width: int):
        super().__init__()
        stages = upsampling_stages(image_size)
        layers: list[nn.Module] = []
        channels = num_channels
        for index in range(stages):
            out = width * 2**index
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        side = image_size // 2**stages
        self.logit = nn.Linear(channels * side * side, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(images).flatten(1)).squeeze(1)


__all__ = ["ConvDiscriminator"]
