"""Configuration of the context encoder.

Pathak, Krähenbühl, Donahue, Darrell, Efros. "Context Encoders: Feature Learning by Inpainting", CVPR 2016
(arXiv:1604.07379). A region of the image is filled with the mean value before the encoder sees it; the decoder
predicts the region from the rest. The defaults are the paper's and its reference code's (pathak22/context-encoder):
the central square of half the image side (64x64 of 128x128), predicted with an overlap of 4 px into the context
whose reconstruction error is weighted 10x, a 4000-unit bottleneck (Fig. 2), the joint loss
0.999 x L_rec + 0.001 x L_adv (Sec. 3.2, 5.1).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..autoencoder.configuration_autoencoder import AutoencoderConfig

REGIONS = ("center", "random")


@strict
class ContextEncoderConfig(AutoencoderConfig):
    r"""
    region (`str`, defaults to `"center"`): the region to inpaint. `"center"`: the central square of half the image
        side (the paper's central region, Sec. 3.3); `"random"`: the paper's random-block masks, `num_random_blocks`
        squares of a quarter of the image side each at uniformly random positions (possibly overlapping), covering
        up to 1/4 of the image (Sec. 3.3). The paper's third kind (random segmentation shapes from PASCAL VOC) is
        not available.
    overlap (`int`, defaults to 4): pixels of context around the hidden region that the decoder also predicts (the
        reference code's `overlapPred` at 128 px). For `"center"` the square of half the image side is the predicted
        region and only its inside, shrunk by `overlap` on every side, is hidden; for `"random"` the blocks are hidden
        and the predicted region extends `overlap` pixels around them.
    overlap_weight (`float`, defaults to 10.0): weight of the squared error on the overlap border (the paper: "10x",
        reference `overlapL2Weight`); 1 on the hidden region, 0 elsewhere.
    num_random_blocks (`int`, defaults to 4): blocks of `region="random"`.
    reconstruction_weight (`float`, defaults to 0.999): lambda_rec of the joint loss (Sec. 5.1).
    adversarial_weight (`float`, defaults to 0.001): lambda_adv (Sec. 5.1); 0 trains with the reconstruction loss
        only (the paper's L2-only model, for features too: Sec. 5.2). With > 0 a discriminator is trained in the
        same forward pass (see `ContextEncoderForPreTraining`).
    discriminator_width (`int`, defaults to 64): channels of the discriminator's first convolution (DCGAN's 64),
        doubled at every stride-2 convolution.
    bottleneck_dim (`int`, defaults to 4000): the paper's 4000-unit bottleneck (Fig. 2).
    horizontal_flip (`bool`, defaults to `True`): random flips (reference code).
    """

    model_type = "hf_ssl_context_encoder"

    region: str = "center"
    overlap: int = 4
    overlap_weight: float = 10.0
    num_random_blocks: int = 4
    reconstruction_weight: float = 0.999
    adversarial_weight: float = 0.001
    discriminator_width: int = 64
    bottleneck_dim: int = 4000
    horizontal_flip: bool = True

    @property
    def region_size(self) -> int:
        """Side of the predicted central square (`"center"`) or of each random block (`"random"`)."""
        return self.image_size // 2 if self.region == "center" else self.image_size // 4

    def validate_context_encoder(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}, got '{self.region}'")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        if self.region == "center" and self.region_size - 2 * self.overlap < 1:
            raise ValueError(f"overlap {self.overlap} leaves nothing hidden in the {self.region_size}-px central "
                             f"square of a {self.image_size}-px image (need overlap < {self.region_size / 2})")
        if self.region == "random" and (self.region_size < 1 or self.num_random_blocks < 1):
            raise ValueError(f"region 'random' needs num_random_blocks >= 1 and images of at least 4 px, got "
                             f"{self.num_random_blocks} blocks of a {self.image_size}-px image")
        for name in ("overlap_weight", "reconstruction_weight", "adversarial_weight"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.reconstruction_weight == 0.0 and self.adversarial_weight == 0.0:
            raise ValueError("reconstruction_weight and adversarial_weight cannot both be 0")
        if self.discriminator_width < 1:
            raise ValueError(f"discriminator_width must be >= 1, got {self.discriminator_width}")


__all__ = ["ContextEncoderConfig", "REGIONS"]
