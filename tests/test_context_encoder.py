"""Context encoder: the weighted L2 on the right region only (against a float64 loop), the encoder never seeing the
hidden region, the random blocks' placement, the adversarial scheme's gradients, the card's preview."""

import math

import pytest
import torch

from hf_ssl import ContextEncoderConfig, ContextEncoderForPreTraining
from hf_ssl.losses.adversarial import discriminator_loss, generator_adversarial_loss
from hf_ssl.nn.backbone_presets import backbone_config_from_spec

from test_autoencoder import BACKBONES

SIZE, OVERLAP, WEIGHT = 16, 1, 10.0


def tiny_config(family: str = "resnet", **kwargs) -> ContextEncoderConfig:
    spec, overrides = BACKBONES[family]
    backbone, _ = backbone_config_from_spec(spec, **overrides)
    defaults = dict(bottleneck_dim=16, decoder_width=16, overlap=OVERLAP, adversarial_weight=0.0)
    return ContextEncoderConfig(backbone_config=backbone, **{**defaults, **kwargs})


def center_weight(i: int, j: int) -> float:
    """The paper's central region at 16 px: the 8 px square [4, 12) is predicted; its inside [5, 11) is hidden
    (weight 1), its 1 px border is context the decoder also predicts (weight 10); nothing else is scored."""
    def inside(lo, hi):
        return lo <= i < hi and lo <= j < hi
    return 1.0 if inside(5, 11) else WEIGHT if inside(4, 12) else 0.0


def reference_loss(prediction, target, weight_of) -> float:
    """sum over scored pixels of w (x_hat - x)^2 / (C x number of scored pixels), in float64."""
    prediction, target = prediction.double(), target.double()
    total, count = 0.0, 0
    for b in range(target.shape[0]):
        for i in range(SIZE):
            for j in range(SIZE):
                w = weight_of(b, i, j)
                if w == 0:
                    continue
                count += target.shape[1]
                for c in range(target.shape[1]):
                    total += w * (prediction[b, c, i, j].item() - target[b, c, i, j].item()) ** 2
    return total / count


@pytest.mark.parametrize("family", sorted(BACKBONES))
def test_central_region_loss_is_the_weighted_l2_over_the_predicted_square_only(family):
    torch.manual_seed(0)
    model = ContextEncoderForPreTraining(tiny_config(family)).train()
    images = torch.randn(2, 3, SIZE, SIZE)
    output = model(images)
    hidden = torch.tensor([[center_weight(i, j) == 1.0 for j in range(SIZE)] for i in range(SIZE)])
    assert torch.equal(output.mask, hidden.expand(2, 1, SIZE, SIZE))
    expected = reference_loss(output.reconstruction.detach(), images, lambda b, i, j: center_weight(i, j))
    assert output.loss.item() == pytest.approx(0.999 * expected, rel=1e-6)  # lambda_rec = 0.999
    assert model.last_loss_terms["reconstruction"].item() == pytest.approx(expected, rel=1e-6)


def test_random_blocks_loss_scores_the_blocks_and_their_overlap_border_only():
    torch.manual_seed(0)
    model = ContextEncoderForPreTraining(tiny_config(region="random", reconstruction_weight=1.0)).train()
    images = torch.randn(2, 3, SIZE, SIZE)
    output = model(images)
    hidden = output.mask[:, 0]
    assert 0 < hidden[0].sum() <= 4 * 4 * 4  # 4 blocks of 4x4 px, possibly overlapping

    def weight(b, i, j):
        if hidden[b, i, j]:
            return 1.0
        near = hidden[b, max(i - OVERLAP, 0):i + OVERLAP + 1, max(j - OVERLAP, 0):j + OVERLAP + 1].any()
        return WEIGHT if near else 0.0

    expected = reference_loss(output.reconstruction.detach(), images, weight)
    assert output.loss.item() == pytest.approx(expected, rel=1e-6)


def test_random_blocks_are_placed_uniformly():
    model = ContextEncoderForPreTraining(tiny_config(region="random"))
    hidden = model.region_mask(torch.zeros(20000, 3, SIZE, SIZE), torch.Generator().manual_seed(0))[:, 0].float()
    positions = SIZE - 4 + 1  # top-left corners of a 4 px block
    for (i, j), cover in {(0, 0): 1, (8, 8): 4 * 4, (0, 8): 4}.items():  # corners of blocks that cover (i, j)
        p = 1 - (1 - cover / positions**2) ** 4
        assert abs(hidden[:, i, j].mean().item() - p) < 4 * math.sqrt(p * (1 - p) / 20000), (i, j)


@pytest.mark.parametrize("region", ["center", "random"])
@pytest.mark.parametrize("family", sorted(BACKBONES))
def test_encoder_never_sees_the_hidden_region(region, family):
    torch.manual_seed(0)
    model = ContextEncoderForPreTraining(tiny_config(family, region=region)).eval()
    images = torch.randn(2, 3, SIZE, SIZE)

    def features(x):
        model_input, hidden = model.prepare_input(x, torch.Generator().manual_seed(3))  # the same region each call
        with torch.no_grad():
            return model.encode(model_input), hidden

    before, hidden = features(images)
    changed_inside = torch.where(hidden, torch.randn_like(images) * 10, images)
    assert torch.equal(features(changed_inside)[0], before)
    outside = (~hidden[0, 0]).nonzero()[0]
    changed_outside = images.clone()
    changed_outside[:, :, outside[0], outside[1]] += 5.0
    assert not torch.allclose(features(changed_outside)[0], before)


def test_adversarial_term_trains_the_discriminator_and_the_predictor_on_their_own_losses():
    torch.manual_seed(0)
    model = ContextEncoderForPreTraining(tiny_config(adversarial_weight=0.001)).train()
    images = torch.randn(4, 3, SIZE, SIZE)
    output = model(images)
    output.loss.backward()
    terms = model.last_loss_terms
    assert output.loss.item() == pytest.approx(
        0.999 * terms["reconstruction"].item() + 0.001 * terms["adversarial"].item() + terms["discriminator"].item(),
        rel=1e-6)
    # recompute each player's own loss from the same forward's outputs
    reconstruction = output.reconstruction.detach().requires_grad_(False)
    real, fake = images[..., 4:12, 4:12], reconstruction[..., 4:12, 4:12]  # D judges the predicted central square
    disc = model.discriminator
    d_loss = discriminator_loss(disc(real), disc(fake))
    expected_d = torch.autograd.grad(d_loss, list(disc.parameters()))
    for parameter, grad in zip(disc.parameters(), expected_d):  # D's gradient is its own loss's, nothing else
        torch.testing.assert_close(parameter.grad, grad)
    # the predictor's gradient: lambda_rec L_rec + lambda_adv (-log D(fake)), with D fixed
    model.zero_grad()
    again = model(images)  # same weights, no randomness in the central region
    from hf_ssl.losses.pixel_reconstruction import pixel_mse_loss
    own = (0.999 * pixel_mse_loss(again.reconstruction, images, model.loss_weight(again.mask))
           + 0.001 * generator_adversarial_loss(disc(again.reconstruction[..., 4:12, 4:12])))
    expected_g = torch.autograd.grad(own, [model.bottleneck.weight], retain_graph=True)[0]
    again.loss.backward()
    torch.testing.assert_close(model.bottleneck.weight.grad, expected_g)


def test_preview_greys_the_hidden_region_and_shows_the_inpainting():
    torch.manual_seed(0)
    model = ContextEncoderForPreTraining(tiny_config()).eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    preview = model.preview(images, torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = model(images)
    assert torch.equal(preview.hidden, output.mask) and preview.model_input is None
    torch.testing.assert_close(preview.reconstruction, output.reconstruction)
    assert preview.row_labels == ("original", "masked", "inpainted")


def test_invalid_regions_are_refused():
    with pytest.raises(Exception, match="leaves nothing hidden"):
        tiny_config(overlap=4)
    with pytest.raises(Exception, match="region must be one of"):
        tiny_config(region="pascal")
