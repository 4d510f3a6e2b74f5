"""Denoising autoencoder (Vincent, Larochelle, Bengio, Manzagol, ICML 2008)."""

import dataclasses

from ...data.collators import flip_collator
from ...registry import Method
from ..autoencoder import PRESETS as AUTOENCODER_PRESETS
from ..autoencoder.modeling_autoencoder import ReconstructionOutput
from .configuration_denoising_autoencoder import DenoisingAutoencoderConfig
from .modeling_denoising_autoencoder import DenoisingAutoencoderForPreTraining

# The autoencoder's sizes and optimiser (the paper trains one-hidden-layer autoencoders with plain SGD on 28x28
# digits: no recipe for a conv backbone); the noise is the paper's (masking, nu = 25%) in every preset.
PRESETS = {
    name: dataclasses.replace(preset, description=preset.description + "; masking noise 25%",
                              config=dict(preset.config), training=dict(preset.training))
    for name, preset in AUTOENCODER_PRESETS.items()
}

METHOD = Method(
    name="denoising_autoencoder",
    summary="Denoising autoencoder: corrupt the image (masking, Gaussian or salt-and-pepper noise) and reconstruct "
            "the clean one",
    paper=("Vincent, Larochelle, Bengio, Manzagol, Extracting and Composing Robust Features with Denoising "
           "Autoencoders, ICML 2008; Vincent, Larochelle, Lajoie, Bengio, Manzagol, Stacked Denoising Autoencoders, "
           "JMLR 2010 (Gaussian and salt-and-pepper noise)"),
    config_class=DenoisingAutoencoderConfig,
    model_class=DenoisingAutoencoderForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=flip_collator,
    tags=("reconstruction", "autoencoder", "denoising"),
    display_name="Denoising autoencoder",
    limitations=(
        "The paper trains one-hidden-layer autoencoders (then stacks them) on 28x28 digits with a sigmoid output and "
        "the cross-entropy; here a whole backbone is trained at once, through a linear bottleneck on its pooled "
        "features and a convolutional decoder, with the squared error (JMLR 2010's loss for real-valued inputs). "
        "The Gaussian sigma and the salt-and-pepper fraction are this library's defaults (the papers tune them per "
        "task). Pixel-level corruption of 8x8 digits upscaled to 16-32 px hides little: the corruption is per "
        "upscaled pixel, not per original pixel."
    ),
)

__all__ = ["DenoisingAutoencoderConfig", "DenoisingAutoencoderForPreTraining", "ReconstructionOutput", "METHOD"]
