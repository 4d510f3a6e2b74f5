"""The input corruptions of denoising autoencoders (Vincent, Larochelle, Bengio, Manzagol, ICML 2008, Sec. 2.3;
Vincent et al., JMLR 2010, Sec. 4.2), batched: one call corrupts a whole (B, C, H, W) batch, each image with its own
draw from `generator` (torch's default generator when None, so a seeded run draws the same corruptions).

The papers corrupt inputs in [0, 1]; images here are normalised per channel ((x - mean) / std), so the papers' values
are mapped into that space: "0" (masking), "min/max" (salt-and-pepper) are the normalised images of the pixel
values 0 and 1, and a Gaussian sigma on [0, 1] pixels is sigma / std per channel. Every value of every channel is one
input component, as in the papers' vectors.
"""

from __future__ import annotations

import torch


def uniform_like(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0, 1) drawn on the generator's device (the preview's CPU generator), moved to `like`'s device."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


def choose_components(pixel_values: torch.Tensor, fraction: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """A (B, C, H, W) bool mask with exactly round(fraction x C x H x W) components True in every image, chosen
    uniformly without replacement ("a fixed number nu d of components of x are chosen at random", ICML 2008)."""
    batch = pixel_values.shape[0]
    size = pixel_values[0].numel()
    count = int(round(fraction * size))
    chosen = uniform_like((batch, size), pixel_values, generator).argsort(dim=1)[:, :count]
    mask = torch.zeros(batch, size, dtype=torch.bool, device=pixel_values.device)
    mask.scatter_(1, chosen, True)
    return mask.view_as(pixel_values)


def masking_noise(pixel_values: torch.Tensor, fraction: float, zero: torch.Tensor,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masking noise: a fraction of the components set to 0 (`zero`: the normalised 0, (1, C, 1, 1)). Returns the
    corrupted images and the (B, C, H, W) bool mask of the corrupted components."""
    mask = choose_components(pixel_values, fraction, generator)
    return torch.where(mask, zero.to(pixel_values), pixel_values), mask


def salt_and_pepper_noise(pixel_values: torch.Tensor, fraction: float, low: torch.Tensor, high: torch.Tensor,
                          generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Salt-and-pepper noise: a fraction of the components set to their minimum (`low`) or maximum (`high`) value
    by a fair coin flip each ((1, C, 1, 1) normalised values). Returns the corrupted images and the mask."""
    mask = choose_components(pixel_values, fraction, generator)
    salt = uniform_like(tuple(pixel_values.shape), pixel_values, generator) < 0.5
    noise = torch.where(salt, high.to(pixel_values), low.to(pixel_values))
    return torch.where(mask, noise, pixel_values), mask


def gaussian_noise(pixel_values: torch.Tensor, std: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive isotropic Gaussian noise x + N(0, sigma^2 I); `std` is sigma in the normalised space, (1, C, 1, 1)."""
    device = generator.device if generator is not None else pixel_values.device
    noise = torch.randn(tuple(pixel_values.shape), generator=generator, device=device).to(pixel_values)
    return pixel_values + noise * std.to(pixel_values)


__all__ = ["uniform_like", "choose_components", "gaussian_noise", "masking_noise", "salt_and_pepper_noise"]
