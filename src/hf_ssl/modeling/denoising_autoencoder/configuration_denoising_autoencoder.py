"""Configuration of the denoising autoencoder.

Vincent, Larochelle, Bengio, Manzagol. "Extracting and Composing Robust Features with Denoising Autoencoders",
ICML 2008: corrupt the input x into x~ ~ q_D(x~ | x), encode x~, and reconstruct the CLEAN x. The ICML paper's
corruption is masking noise (a fixed fraction nu of the components set to 0; nu = 25% in its experiments, Sec. 5);
Vincent, Larochelle, Lajoie, Bengio, Manzagol, "Stacked Denoising Autoencoders", JMLR 2010 (Sec. 4.2) adds additive
Gaussian and salt-and-pepper noise. Everything else is the autoencoder's (`AutoencoderConfig`).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..autoencoder.configuration_autoencoder import AutoencoderConfig

NOISES = ("masking", "gaussian", "salt_pepper")


@strict
class DenoisingAutoencoderConfig(AutoencoderConfig):
    r"""
    noise (`str`, defaults to `"masking"`): the corruption q_D: `"masking"` (ICML 2008: a fraction of the components
        set to 0), `"gaussian"` (JMLR 2010: x + N(0, sigma^2 I)) or `"salt_pepper"` (JMLR 2010: a fraction of the
        components set to their minimum or maximum by a fair coin flip). Drawn in the forward pass, anew every step.
    masking_fraction (`float`, defaults to 0.25): nu of masking noise, the share of components set to 0 (the ICML
        2008 paper's 25%).
    gaussian_std (`float`, defaults to 0.1): sigma of Gaussian noise on pixels in [0, 1] (divided by each channel's
        std in the normalised space). JMLR 2010 tunes it per task; 0.1 is this library's choice (visible noise that
        leaves the digit or garment recognisable at 32 px).
    salt_pepper_fraction (`float`, defaults to 0.25): share of components set to 0 or 1, half each in expectation
        (JMLR 2010 tunes it per task; this library takes the ICML paper's masking fraction).
    The loss is the squared error on the clean image (JMLR 2010's loss for real-valued inputs; the ICML paper's
    binary inputs use the cross-entropy).
    """

    model_type = "hf_ssl_denoising_autoencoder"

    noise: str = "masking"
    masking_fraction: float = 0.25
    gaussian_std: float = 0.1
    salt_pepper_fraction: float = 0.25

    def validate_denoising(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, got '{self.noise}'")
        for name in ("masking_fraction", "salt_pepper_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not self.gaussian_std >= 0.0:
            raise ValueError(f"gaussian_std must be >= 0, got {self.gaussian_std}")


__all__ = ["DenoisingAutoencoderConfig", "NOISES"]
