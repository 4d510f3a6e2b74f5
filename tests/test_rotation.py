"""RotNet: every image in its four rotations in one batch, the loss against a float64 loop of the paper's Eq. 1-3, the
card's preview."""

import pytest
import torch

from hf_ssl import RotationConfig, RotationForPreTraining
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.pretext import rotate_batch


def tiny_model(backbone: str = "resnet-test") -> RotationForPreTraining:
    config, _ = backbone_config_from_spec(backbone, image_size=16)
    torch.manual_seed(0)
    return RotationForPreTraining(RotationConfig(backbone_config=config)).eval()


def test_batch_holds_every_image_in_its_four_rotations():
    images = torch.randn(3, 2, 5, 5)
    rotated, labels = rotate_batch(images)
    assert rotated.shape == (12, 2, 5, 5) and labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for index in range(12):
        k, b = divmod(index, 3)
        assert torch.equal(rotated[index], torch.rot90(images[b], k, dims=(1, 2)))
    # 90 degrees is counter-clockwise: the top row becomes the left column, read bottom-up
    assert torch.equal(rotated[3, 0, :, 0], images[0, 0, 0, :].flip(0))


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_the_cross_entropy_over_the_four_rotations_of_every_image(backbone):
    model = tiny_model(backbone)
    images = torch.randn(3, 3, 16, 16)
    output = model(images)
    total = 0.0
    with torch.no_grad():
        for b in range(3):
            for k in range(4):  # the paper's loss: -1/4 sum_k log F^k(rot(x, k)), averaged over the images
                logits = model.classifier(model.encode(torch.rot90(images[b:b + 1], k, dims=(2, 3))))[0].double()
                total += -(logits[k] - torch.logsumexp(logits, 0)).item()
    assert output.loss.item() == pytest.approx(total / 12, rel=1e-5)
    assert output.logits.shape == (12, 4) and output.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_preview_turns_the_rotated_image_back_by_the_predicted_rotation():
    model = tiny_model()
    with torch.no_grad():  # a classifier that always answers "90 degrees"
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 10.0, 0.0, 0.0]))
    images = torch.randn(6, 3, 16, 16)
    preview = model.preview(images, generator=torch.Generator().manual_seed(0))
    assert preview.row_labels == ("original", "rotated", "rotated back by the prediction")
    drawn = []
    for b in range(6):
        k = next(k for k in range(4) if torch.equal(preview.model_input[b], torch.rot90(images[b], k, dims=(1, 2))))
        drawn.append(k)
        assert torch.equal(preview.reconstruction[b], torch.rot90(images[b], k - 1, dims=(1, 2)))
    assert len(set(drawn)) > 1  # the rotations are drawn, not fixed


def test_config_checks_the_crop_scale():
    with pytest.raises(Exception, match="crop_min_scale"):
        RotationConfig(crop_min_scale=0.0)
    with pytest.raises(Exception, match="initializer_range"):
        RotationConfig(initializer_range=0.0)
    default = RotationConfig()
    assert default.crop_min_scale == pytest.approx((224 / 256) ** 2) and default.image_size == 224
