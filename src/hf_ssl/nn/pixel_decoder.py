"""A light convolutional decoder from one vector per image back to its pixels (the autoencoders' and the context
encoder's decoder). It takes pooled features, so it works behind any backbone (ViT, ResNet, ConvNeXt).

Why transposed convolutions rather than an MLP: an MLP's output layer has hidden x C x H x W weights (512 x 3,072 =
1.6M at 32 px, 77M at 224 px), while this decoder's weights hardly depend on the image size (a linear layer to a small
map, then a few 4x4 up-convolutions): about 0.4M at 32 px with width 128, and it has the spatial prior an MLP has to
learn. It is the DCGAN generator that the context encoder's decoder follows (Pathak et al. 2016, Sec. 3.1: a fully
connected layer, then up-convolutions with BatchNorm and ReLU).
"""

from __future__ import annotations

import torch
from torch import nn

MIN_START_SIZE = 4  # the side of the first feature map, at least (4x4 in DCGAN)
MIN_WIDTH = 8


def upsampling_stages(image_size: int) -> int:
    """How many 2x up-convolutions take a map of side >= 4 to `image_size`: the largest k with `image_size / 2**k` a
    whole number >= 4 (16 px: 2 from 4x4; 32 px: 3 from 4x4; 224 px: 5 from 7x7; 28 px: 2 from 7x7)."""
    stages = 0
    while image_size % 2 ** (stages + 1) == 0 and image_size // 2 ** (stages + 1) >= MIN_START_SIZE:
        stages += 1
    return stages


class ConvDecoder(nn.Module):
    """(B, input_dim) -> (B, num_channels, image_size, image_size).

    Linear -> (width, s, s) map with BatchNorm + ReLU, then `upsampling_stages(image_size)` times
    [ConvTranspose2d(4, stride 2, padding 1) -> BatchNorm -> ReLU], halving the width each time (at least 8), then a
    3x3 convolution to the pixels without an activation: the targets are normalised pixels, not bounded.
    """

    def __init__(self, input_dim: int, image_size: int, num_channels: int, width: int):
        super().__init__()
        stages = upsampling_stages(image_size)
        self.start_size = image_size // 2**stages
        self.width = width
        self.project = nn.Linear(input_dim, width * self.start_size**2, bias=False)
        self.project_norm = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        channels = width
        for _ in range(stages):
            out = max(channels // 2, MIN_WIDTH)
            layers += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            channels = out
        self.upsample = nn.Sequential(*layers)
        self.to_pixels = nn.Conv2d(channels, num_channels, 3, padding=1)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        hidden = self.project(code).view(code.shape[0], self.width, self.start_size, self.start_size)
        hidden = torch.relu(self.project_norm(hidden))
        return self.to_pixels(self.upsample(hidden))


__all__ = ["ConvDecoder", "upsampling_stages"]
