"""Configuration of the autoencoder, and the fields every reconstruction pretext task here shares (the denoising
autoencoder and the context encoder derive from it).

The autoencoder of the lecture notes (seed 004, "Auto-Encoders"): an encoder maps x in R^d to a code e in R^l with
l < d (the information bottleneck), a decoder maps e back to x_hat = dec(enc(x)), and both are trained with the
squared reconstruction error. Here the encoder is any transformers vision backbone followed by a linear bottleneck
on its pooled features; the decoder is `nn.pixel_decoder.ConvDecoder`.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..image_method import DEFAULT_IMAGE_SIZE, ImageMethodConfig


@strict
class AutoencoderConfig(ImageMethodConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder, any transformers vision backbone (ResNet, ConvNeXt, ViT); its
        pooled features feed the bottleneck. Its `image_size` (ViT's own field; an extra attribute on conv configs,
        224 when absent) is the training resolution, which the decoder reconstructs. Exported as its native class.
    bottleneck_dim (`int`, defaults to 128): l, the width of the linear bottleneck e = W h on the pooled features h.
        The notes ask only l < d (d = 3 x 32 x 32 = 3,072 values at 32 px); 128 keeps the code far below d at every
        preset size without starving the decoder.
    decoder_width (`int`, defaults to 512): channels of the decoder's first feature map (4x4 or 7x7), halved by each
        2x up-convolution (at least 8): the DCGAN generator's 512 channels at 4x4, which the context encoder's
        decoder follows (Pathak et al. 2016).
    horizontal_flip (`bool`, defaults to `False`): random horizontal flips of the training images (the notes
        augment nothing: the image is its own target).
    initializer_range (`float`, defaults to 0.02): std of the normal init of the bottleneck's and the decoder's
        weights (DCGAN's N(0, 0.02)).
    """

    model_type = "hf_ssl_autoencoder"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    bottleneck_dim: int = 128
    decoder_width: int = 512
    horizontal_flip: bool = False
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The decoder is built for this resolution: one source of truth, the backbone config (ViT keeps it there for
        # its position embeddings; for conv backbones it is an extra attribute that round-trips through config.json).
        if getattr(self.backbone_config, "image_size", None) is None:
            self.backbone_config.image_size = DEFAULT_IMAGE_SIZE

    def validate_autoencoder(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.bottleneck_dim < 1:
            raise ValueError(f"bottleneck_dim must be >= 1, got {self.bottleneck_dim}")
        if self.decoder_width < 1:
            raise ValueError(f"decoder_width must be >= 1, got {self.decoder_width}")
        if not 0.0 < self.initializer_range <= 1.0:
            raise ValueError(f"initializer_range must be in (0, 1], got {self.initializer_range}")


__all__ = ["AutoencoderConfig"]
