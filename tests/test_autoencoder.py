"""Autoencoder: the loss against the formula on every backbone family, the decoder's geometry, the card's preview."""

import pytest
import torch

from hf_ssl import AutoencoderConfig, AutoencoderForPreTraining
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.pixel_decoder import ConvDecoder, upsampling_stages

BACKBONES = {
    "resnet": ("resnet-test", dict(image_size=16)),
    "convnext": ("convnext-test", dict(image_size=16)),
    "vit": ("vit-test", dict(image_size=16, patch_size=4)),
}


def tiny_config(family: str = "resnet", **kwargs) -> AutoencoderConfig:
    spec, overrides = BACKBONES[family]
    backbone, _ = backbone_config_from_spec(spec, **overrides)
    return AutoencoderConfig(backbone_config=backbone, **{**dict(bottleneck_dim=16, decoder_width=16), **kwargs})


def reference_mse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """(1 / (B C H W)) sum over every pixel value of (x_hat - x)^2, in float64."""
    prediction, target = prediction.double(), target.double()
    total, count = 0.0, 0
    for b in range(target.shape[0]):
        for c in range(target.shape[1]):
            for i in range(target.shape[2]):
                for j in range(target.shape[3]):
                    total += (prediction[b, c, i, j].item() - target[b, c, i, j].item()) ** 2
                    count += 1
    return total / count


@pytest.mark.parametrize("family", sorted(BACKBONES))
def test_loss_is_the_mean_squared_error_over_all_pixels_of_the_clean_image(family):
    torch.manual_seed(0)
    model = AutoencoderForPreTraining(tiny_config(family)).train()
    images = torch.randn(3, 3, 16, 16)
    output = model(images)
    assert torch.equal(output.model_input, images)  # the plain autoencoder sees the image itself
    assert output.reconstruction.shape == images.shape and output.code.shape == (3, 16)
    assert output.loss.item() == pytest.approx(reference_mse(output.reconstruction.detach(), images), rel=1e-6)
    output.loss.backward()  # the reconstruction error reaches the encoder through the bottleneck
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


@pytest.mark.parametrize("image_size, stages", [(16, 2), (28, 2), (32, 3), (128, 5), (224, 5), (7, 0)])
def test_decoder_upsamples_from_a_small_map_to_the_image_size(image_size, stages):
    assert upsampling_stages(image_size) == stages
    decoder = ConvDecoder(8, image_size, 3, width=16)
    assert decoder.start_size * 2**stages == image_size
    assert decoder(torch.randn(2, 8)).shape == (2, 3, image_size, image_size)


def test_preview_shows_the_input_and_the_decoder_output():
    torch.manual_seed(0)
    model = AutoencoderForPreTraining(tiny_config()).eval()
    images = torch.randn(2, 3, 16, 16)
    preview = model.preview(images, torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(preview.reconstruction, model(images).reconstruction)
    assert preview.hidden is None and torch.equal(preview.model_input, images)
    assert preview.row_labels == ("original", "input", "reconstruction")


def test_invalid_sizes_are_refused():
    with pytest.raises(Exception, match="bottleneck_dim"):  # @strict wraps the ValueError
        tiny_config(bottleneck_dim=0)
    model = AutoencoderForPreTraining(tiny_config())
    with pytest.raises(ValueError, match="16x16"):
        model(torch.randn(1, 3, 32, 32))
