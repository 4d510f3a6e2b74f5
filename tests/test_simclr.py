"""SimCLR: config round trip and validation, the loss against NT-Xent on per-view embeddings, the temperature.
Gradients and the collator are shared contracts in test_joint_embedding.py; the CLI end to end is in
test_joint_embedding_cli.py."""

import pytest
import torch

from conftest import tiny_backbone_config

from hf_ssl import SimCLRConfig, SimCLRForPreTraining
from hf_ssl.losses.nt_xent import nt_xent_loss
from hf_ssl.nn.backbone_presets import backbone_config_from_spec


def tiny_config(backbone: str = "resnet-test", **kwargs) -> SimCLRConfig:
    backbone_config = tiny_backbone_config(backbone, 16)
    return SimCLRConfig(backbone_config=backbone_config, **{**dict(projection_hidden_dim=32, projection_dim=16), **kwargs})


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip(backbone, tmp_path):
    config = tiny_config(backbone, temperature=0.2, crop_min_scale=0.3, gather_distributed=False)
    config.save_pretrained(tmp_path)
    loaded = SimCLRConfig.from_pretrained(tmp_path)
    assert loaded.backbone_config.model_type == backbone.split("-")[0]
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.temperature == 0.2 and loaded.crop_min_scale == 0.3 and loaded.gather_distributed is False
    assert loaded.projection_hidden_dim == 32 and loaded.projection_dim == 16
    assert loaded.image_size == 16 and loaded.num_channels == 3
    assert loaded.patch_size == (4 if backbone.startswith("vit") else 1)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()


def test_paper_defaults():
    config = SimCLRConfig()
    assert config.backbone_config.model_type == "resnet" and config.image_size == 224
    assert (config.projection_hidden_dim, config.projection_dim, config.temperature) == (2048, 128, 0.5)
    assert config.crop_min_scale == 0.08 and config.blur_probability == 0.5 and config.grayscale_probability == 0.2


@pytest.mark.parametrize("bad", [dict(temperature=0.0), dict(temperature=-0.1), dict(projection_dim=0),
                                 dict(crop_min_scale=0.0), dict(crop_min_scale=1.5)])
def test_invalid_values_are_refused(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        tiny_config(**bad)


def test_vit_image_size_must_fit_patches():
    backbone_config, _ = backbone_config_from_spec("vit-test", image_size=18, patch_size=4)
    with pytest.raises(Exception, match="multiple of patch_size"):
        SimCLRConfig(backbone_config=backbone_config)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_nt_xent_of_each_view_encoded_separately(backbone):
    torch.manual_seed(0)
    model = SimCLRForPreTraining(tiny_config(backbone, temperature=0.3))
    # Give BatchNorm the statistics of a real batch (momentum 1: running stats = that batch's), so that in eval
    # mode the embeddings are centred and spread out (with the initial stats they are nearly parallel and the
    # loss hardly depends on pairing or temperature). Eval mode: encoding views together or apart must agree.
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.momentum = 1.0
    model.train()
    model(torch.randn(64, 2, 3, 16, 16))
    model.eval()
    pixels = torch.randn(5, 2, 3, 16, 16)
    with torch.no_grad():
        output = model(pixels)
        z1 = model.projector(model.encode(pixels[:, 0]))
        z2 = model.projector(model.encode(pixels[:, 1]))
    assert output.embeddings.shape == (5, 2, 16)
    torch.testing.assert_close(output.embeddings[:, 0], z1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.embeddings[:, 1], z2, rtol=1e-4, atol=1e-5)
    expected = nt_xent_loss(z1, z2, temperature=0.3)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the check is sensitive: other pairings of the views or another temperature give another loss
    assert nt_xent_loss(z1, z2.roll(1, 0), temperature=0.3).item() != pytest.approx(output.loss.item(), rel=1e-2)
    assert nt_xent_loss(z1, z2, temperature=0.5).item() != pytest.approx(output.loss.item(), rel=1e-2)
    assert model.last_embeddings.shape == (10, 16) and not model.last_embeddings.requires_grad


def test_loss_uses_the_configured_temperature():
    torch.manual_seed(0)
    model = SimCLRForPreTraining(tiny_config()).eval()
    pixels = torch.randn(4, 2, 3, 16, 16)
    with torch.no_grad():
        loss_a = model(pixels).loss
        model.config.temperature = 0.1
        loss_b = model(pixels).loss
        z = model(pixels).embeddings
    assert loss_b.item() == pytest.approx(nt_xent_loss(z[:, 0], z[:, 1], 0.1).item(), rel=1e-5)
    assert loss_a.item() != pytest.approx(loss_b.item(), rel=1e-3)

