"""The GAN losses of the context encoder (Pathak et al. 2016, Eq. 2-3; Goodfellow et al. 2014), on logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(F(x))): the discriminator tells real regions (label 1) from predicted ones (label 0);
    the two terms summed, each a mean over the batch (DCGAN's errD = errD_real + errD_fake)."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(F(x)): the predictor's adversarial term, the non-saturating form the reference code trains with."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


__all__ = ["discriminator_loss", "generator_adversarial_loss"]
