"""Barlow Twins: config round trip and validation, the loss against `barlow_twins_loss` on per-view embeddings
and its dependence on lambda_offdiag, the presets. Gradients through both branches, no per-step side effects and the
collator are shared contracts in test_joint_embedding.py; the CLI end to end is in test_joint_embedding_cli.py."""

import pytest
import torch

from conftest import primed_eval_model, tiny_backbone_config

from hf_ssl import get_method
from hf_ssl.losses.barlow_twins import barlow_twins_loss
from hf_ssl.modeling.barlow_twins import BarlowTwinsConfig, BarlowTwinsForPreTraining
from hf_ssl.modeling.barlow_twins import modeling_barlow_twins


def tiny_config(backbone: str = "resnet-test", **kwargs) -> BarlowTwinsConfig:
    backbone_config = tiny_backbone_config(backbone, 16)
    defaults = dict(projection_hidden_dim=32, projection_dim=16, lambda_offdiag=1 / 16)
    return BarlowTwinsConfig(backbone_config=backbone_config, **{**defaults, **kwargs})


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip(backbone, tmp_path):
    config = tiny_config(backbone, lambda_offdiag=0.02, standardization_eps=1e-3, crop_min_scale=0.3,
                         gather_distributed=False)
    config.save_pretrained(tmp_path)
    loaded = BarlowTwinsConfig.from_pretrained(tmp_path)
    assert loaded.model_type == "hf_ssl_barlow_twins"
    assert loaded.backbone_config.model_type == backbone.split("-")[0]
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.lambda_offdiag == 0.02 and loaded.standardization_eps == 1e-3
    assert loaded.crop_min_scale == 0.3 and loaded.gather_distributed is False
    assert loaded.projection_hidden_dim == 32 and loaded.projection_dim == 16
    assert loaded.image_size == 16 and loaded.num_channels == 3
    assert loaded.patch_size == (4 if backbone.startswith("vit") else 1)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()


def test_paper_defaults():
    config = BarlowTwinsConfig()
    assert config.backbone_config.model_type == "resnet" and config.image_size == 224
    assert (config.projection_hidden_dim, config.projection_dim) == (8192, 8192)
    assert config.lambda_offdiag == 5e-3 and config.standardization_eps == 1e-5
    assert config.gather_distributed is True and config.crop_min_scale == 0.08


def test_projector_is_three_bias_free_layers():
    model = BarlowTwinsForPreTraining(tiny_config(projection_hidden_dim=24, projection_dim=12))
    linears = [m for m in model.projector if isinstance(m, torch.nn.Linear)]
    norms = [m for m in model.projector if isinstance(m, torch.nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 24), (24, 24), (24, 12)]
    assert len(norms) == 2 and all(m.bias is None for m in linears)


@pytest.mark.parametrize("bad", [
    dict(lambda_offdiag=-1e-3), dict(standardization_eps=0.0), dict(projection_dim=0),
    dict(projection_hidden_dim=0), dict(crop_min_scale=0.0), dict(crop_min_scale=1.5), dict(initializer_range=0.0),
])
def test_invalid_values_are_refused(bad):
    name, value = next(iter(bad.items()))
    with pytest.raises(Exception, match=rf"{name}.*{value}"):
        tiny_config(**bad)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_barlow_twins_loss_of_each_view_encoded_separately(backbone):
    model = primed_eval_model(BarlowTwinsForPreTraining, tiny_config(backbone, lambda_offdiag=0.1, standardization_eps=1e-3))
    pixels = torch.randn(8, 2, 3, 16, 16)
    with torch.no_grad():
        output = model(pixels)
        z1 = model.projector(model.encode(pixels[:, 0]))
        z2 = model.projector(model.encode(pixels[:, 1]))
    assert output.embeddings.shape == (8, 2, 16) and output.pooled_features.shape[:2] == (8, 2)
    torch.testing.assert_close(output.embeddings[:, 0], z1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.embeddings[:, 1], z2, rtol=1e-4, atol=1e-5)
    expected = barlow_twins_loss(z1, z2, lambda_offdiag=0.1, eps=1e-3)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-4)
    # the check is sensitive: another pairing of the views or another lambda give another loss
    assert barlow_twins_loss(z1, z2.roll(1, 0), 0.1, eps=1e-3).item() != pytest.approx(output.loss.item(), rel=1e-2)
    assert barlow_twins_loss(z1, z2, 5e-3, eps=1e-3).item() != pytest.approx(output.loss.item(), rel=1e-2)
    assert model.last_embeddings.shape == (16, 16) and not model.last_embeddings.requires_grad


def test_loss_uses_lambda_offdiag_linearly():
    """loss(lambda) = on-diagonal + lambda * off-diagonal: the model's loss for three values of the configured
    lambda_offdiag lies on that line, with a positive slope (the off-diagonal sum) and intercept."""
    model = primed_eval_model(BarlowTwinsForPreTraining, tiny_config())
    pixels = torch.randn(8, 2, 3, 16, 16)
    losses = {}
    with torch.no_grad():
        for lam in (0.0, 0.05, 0.2):
            model.config.lambda_offdiag = lam
            losses[lam] = model(pixels).loss.item()
        z = model(pixels).embeddings
    on_diagonal, off_diagonal = losses[0.0], (losses[0.05] - losses[0.0]) / 0.05
    assert on_diagonal > 0 and off_diagonal > 0
    assert losses[0.2] == pytest.approx(on_diagonal + 0.2 * off_diagonal, rel=1e-4)
    assert losses[0.2] == pytest.approx(barlow_twins_loss(z[:, 0], z[:, 1], 0.2).item(), rel=1e-4)


def test_no_loss_when_not_asked():
    model = primed_eval_model(BarlowTwinsForPreTraining, tiny_config())
    with torch.no_grad():
        output = model(torch.randn(4, 2, 3, 16, 16), return_loss=False)
    assert output.loss is None and output.embeddings.shape == (4, 2, 16)


def test_gather_flag_and_eps_are_passed(monkeypatch):
    model = primed_eval_model(BarlowTwinsForPreTraining, tiny_config(gather_distributed=False, standardization_eps=1e-4))
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return barlow_twins_loss(*args, **kwargs)

    monkeypatch.setattr(modeling_barlow_twins, "barlow_twins_loss", spy)
    with torch.no_grad():
        model(torch.randn(4, 2, 3, 16, 16))
        model.config.gather_distributed = True
        model(torch.randn(4, 2, 3, 16, 16))
    assert [c["gather_distributed"] for c in calls] == [False, True]
    assert all(c["eps"] == 1e-4 for c in calls)






def test_presets_scale_lambda_with_the_projector_width():
    method = get_method("barlow_twins")
    assert set(method.presets) == {"tiny", "small", "base"} and method.default_preset == "small"
    tiny, small, base = (method.presets[name].config for name in ("tiny", "small", "base"))
    assert tiny["lambda_offdiag"] == pytest.approx(1 / tiny["projection_dim"])
    assert (small["backbone"], small["projection_dim"], small["lambda_offdiag"]) == ("resnet18-half", 1024, 5e-3)
    assert (base["backbone"], base["projection_dim"], base["lambda_offdiag"]) == ("resnet50", 8192, 5e-3)
    training = method.presets["small"].training
    assert training["per_device_train_batch_size"] == 256 and 0 < training["warmup_steps"] < 1
