"""Denoising autoencoder: the statistics of each corruption, the loss on the clean image against the formula,
reproducible and redrawn corruptions, the card's preview."""

import math

import pytest
import torch

from hf_ssl import DenoisingAutoencoderConfig, DenoisingAutoencoderForPreTraining
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.corruption import gaussian_noise, masking_noise, salt_and_pepper_noise

from test_autoencoder import BACKBONES, reference_mse

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tiny_config(family: str = "resnet", **kwargs) -> DenoisingAutoencoderConfig:
    spec, overrides = BACKBONES[family]
    backbone, _ = backbone_config_from_spec(spec, **overrides)
    return DenoisingAutoencoderConfig(backbone_config=backbone,
                                      **{**dict(bottleneck_dim=16, decoder_width=16), **kwargs})


def normalised(value: float) -> torch.Tensor:
    return (value - torch.tensor(MEAN).view(1, -1, 1, 1)) / torch.tensor(STD).view(1, -1, 1, 1)


def within(observed: float, p: float, n: int, sigmas: float = 4.0) -> bool:
    return abs(observed - p) < sigmas * math.sqrt(p * (1 - p) / n)


def test_masking_noise_sets_exactly_a_fraction_of_components_uniformly_to_zero():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4000, 3, 4, 4)
    corrupted, mask = masking_noise(images, 0.25, normalised(0.0), generator)
    assert torch.all(mask.flatten(1).sum(dim=1) == 12)                  # 25% of 48 components, in every image
    frequency = mask.float().mean(dim=0)                                 # every component equally likely
    assert all(within(f, 0.25, 4000) for f in frequency.flatten().tolist())
    zero = normalised(0.0).expand_as(images)
    assert torch.equal(corrupted[mask], zero[mask])                     # pixel value 0, normalised per channel
    assert torch.equal(corrupted[~mask], images[~mask])                 # the rest untouched


def test_salt_and_pepper_sets_a_fraction_to_min_or_max_half_each():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4000, 3, 4, 4)
    low, high = normalised(0.0), normalised(1.0)
    corrupted, mask = salt_and_pepper_noise(images, 0.25, low, high, generator)
    assert torch.all(mask.flatten(1).sum(dim=1) == 12)
    is_low = corrupted == low.expand_as(images)
    is_high = corrupted == high.expand_as(images)
    assert torch.all((is_low | is_high)[mask]) and torch.equal(corrupted[~mask], images[~mask])
    assert within(is_high[mask].float().mean().item(), 0.5, int(mask.sum()))  # a fair coin per component


def test_gaussian_noise_has_the_configured_sigma_per_channel():
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(2000, 3, 4, 4)
    sigma = 0.1 / torch.tensor(STD).view(1, -1, 1, 1)
    noise = gaussian_noise(images, sigma, generator) - images
    for channel in range(3):
        values = noise[:, channel].double().flatten() * STD[channel]  # back to [0, 1] pixel units
        assert abs(values.mean().item()) < 4 * 0.1 / math.sqrt(values.numel())
        assert values.std().item() == pytest.approx(0.1, rel=0.02)


@pytest.mark.parametrize("noise", ["masking", "gaussian", "salt_pepper"])
@pytest.mark.parametrize("family", sorted(BACKBONES))
def test_loss_is_the_squared_error_against_the_clean_image(noise, family):
    torch.manual_seed(0)
    model = DenoisingAutoencoderForPreTraining(tiny_config(family, noise=noise)).train()
    images = torch.randn(2, 3, 16, 16)
    output = model(images)
    assert not torch.equal(output.model_input, images)  # the encoder saw a corrupted copy...
    expected = reference_mse(output.reconstruction.detach(), images)  # ...and the loss is on the clean one
    assert output.loss.item() == pytest.approx(expected, rel=1e-6)
    assert output.loss.item() != pytest.approx(reference_mse(output.reconstruction.detach(), output.model_input))


def test_corruption_is_redrawn_every_forward_and_reproducible_with_a_seed():
    torch.manual_seed(0)
    model = DenoisingAutoencoderForPreTraining(tiny_config()).eval()
    images = torch.randn(2, 3, 16, 16)
    torch.manual_seed(5)
    first, second = model(images).model_input, model(images).model_input
    assert not torch.equal(first, second)
    torch.manual_seed(5)
    assert torch.equal(model(images).model_input, first)


def test_preview_shows_the_corrupted_input_and_the_denoised_output():
    torch.manual_seed(0)
    model = DenoisingAutoencoderForPreTraining(tiny_config()).eval()
    images = torch.randn(2, 3, 16, 16)
    preview = model.preview(images, torch.Generator().manual_seed(0))
    expected_input, _ = model.corrupt(images, torch.Generator().manual_seed(0))
    assert torch.equal(preview.model_input, expected_input) and preview.hidden is None
    with torch.no_grad():
        torch.testing.assert_close(preview.reconstruction, model.decode(model.encode(expected_input)))
    assert preview.row_labels == ("original", "corrupted", "denoised")


def test_invalid_noise_is_refused():
    with pytest.raises(Exception, match="noise must be one of"):
        tiny_config(noise="speckle")
    with pytest.raises(Exception, match="masking_fraction"):
        tiny_config(masking_fraction=1.5)
