"""VICReg: config round trip and validation, the output terms against `vicreg_loss` on per-view embeddings,
the logged terms, the presets. Gradients through both branches, no per-step side effects and the collator are
shared contracts in test_joint_embedding.py; the CLI end to end is in test_joint_embedding_cli.py."""

import pytest
import torch

from conftest import primed_eval_model, tiny_backbone_config

from hf_ssl import get_method
from hf_ssl.losses.vicreg import vicreg_loss
from hf_ssl.modeling.vicreg import VICRegConfig, VICRegForPreTraining
from hf_ssl.modeling.vicreg import modeling_vicreg


def tiny_config(backbone: str = "resnet-test", **kwargs) -> VICRegConfig:
    backbone_config = tiny_backbone_config(backbone, 16)
    defaults = dict(projection_hidden_dim=32, projection_dim=16)
    return VICRegConfig(backbone_config=backbone_config, **{**defaults, **kwargs})


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip(backbone, tmp_path):
    config = tiny_config(backbone, invariance_weight=10.0, variance_weight=20.0, covariance_weight=2.0,
                         target_std=0.5, variance_eps=1e-3, crop_min_scale=0.3, gather_distributed=False)
    config.save_pretrained(tmp_path)
    loaded = VICRegConfig.from_pretrained(tmp_path)
    assert loaded.model_type == "hf_ssl_vicreg"
    assert loaded.backbone_config.model_type == backbone.split("-")[0]
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert (loaded.invariance_weight, loaded.variance_weight, loaded.covariance_weight) == (10.0, 20.0, 2.0)
    assert loaded.target_std == 0.5 and loaded.variance_eps == 1e-3
    assert loaded.crop_min_scale == 0.3 and loaded.gather_distributed is False
    assert loaded.projection_hidden_dim == 32 and loaded.projection_dim == 16
    assert loaded.image_size == 16 and loaded.num_channels == 3
    assert loaded.patch_size == (4 if backbone.startswith("vit") else 1)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()


def test_paper_defaults():
    config = VICRegConfig()
    assert config.backbone_config.model_type == "resnet" and config.image_size == 224
    assert (config.projection_hidden_dim, config.projection_dim) == (8192, 8192)
    assert (config.invariance_weight, config.variance_weight, config.covariance_weight) == (25.0, 25.0, 1.0)
    assert config.target_std == 1.0 and config.variance_eps == 1e-4
    assert config.gather_distributed is True and config.crop_min_scale == 0.08


def test_expander_is_three_layers_without_output_bias():
    model = VICRegForPreTraining(tiny_config(projection_hidden_dim=24, projection_dim=12))
    linears = [m for m in model.projector if isinstance(m, torch.nn.Linear)]
    norms = [m for m in model.projector if isinstance(m, torch.nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 24), (24, 24), (24, 12)]
    assert len(norms) == 2 and linears[-1].bias is None


@pytest.mark.parametrize("bad", [
    dict(invariance_weight=-1.0), dict(variance_weight=-0.5), dict(covariance_weight=-1.0),
    dict(target_std=0.0), dict(variance_eps=0.0), dict(projection_dim=0), dict(projection_hidden_dim=0),
    dict(crop_min_scale=0.0), dict(crop_min_scale=1.5), dict(initializer_range=0.0),
])
def test_invalid_values_are_refused(bad):
    name, value = next(iter(bad.items()))
    with pytest.raises(Exception, match=rf"{name}.*{value}"):
        tiny_config(**bad)


def test_all_zero_weights_are_refused():
    with pytest.raises(Exception, match="no loss"):
        tiny_config(invariance_weight=0.0, variance_weight=0.0, covariance_weight=0.0)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_output_terms_are_vicreg_loss_of_each_view_encoded_separately(backbone):
    weights = dict(invariance_weight=3.0, variance_weight=7.0, covariance_weight=0.5)
    model = primed_eval_model(VICRegForPreTraining, tiny_config(backbone, target_std=2.0, variance_eps=1e-3, **weights))
    pixels = torch.randn(6, 2, 3, 16, 16)
    with torch.no_grad():
        output = model(pixels)
        z1 = model.projector(model.encode(pixels[:, 0]))
        z2 = model.projector(model.encode(pixels[:, 1]))
    assert output.embeddings.shape == (6, 2, 16) and output.pooled_features.shape[:2] == (6, 2)
    torch.testing.assert_close(output.embeddings[:, 0], z1, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.embeddings[:, 1], z2, rtol=1e-4, atol=1e-5)
    expected = vicreg_loss(z1, z2, gamma=2.0, eps=1e-3, **weights)
    for field, term in (("loss", "loss"), ("invariance_loss", "invariance"), ("variance_loss", "variance"),
                        ("covariance_loss", "covariance")):
        assert getattr(output, field).item() == pytest.approx(getattr(expected, term).item(), rel=1e-4), field
    # the terms are the unweighted ones and the loss is their weighted sum with the configured weights
    weighted = 3.0 * output.invariance_loss + 7.0 * output.variance_loss + 0.5 * output.covariance_loss
    assert output.loss.item() == pytest.approx(weighted.item(), rel=1e-5)
    # the check is sensitive: another pairing of the views, another gamma or the default weights differ
    assert vicreg_loss(z1, z2.roll(1, 0), **weights).invariance.item() != pytest.approx(
        output.invariance_loss.item(), rel=1e-2)
    other_gamma = vicreg_loss(z1, z2, gamma=1.0, eps=1e-3)
    assert other_gamma.variance.item() != pytest.approx(output.variance_loss.item(), rel=1e-2)
    assert vicreg_loss(z1, z2, gamma=2.0, eps=1e-3).loss.item() != pytest.approx(output.loss.item(), rel=1e-2)
    assert output.variance_loss.item() > 0 and output.covariance_loss.item() > 0
    # kept for logging: detached copies of the three terms of this forward, and the embeddings for the monitor
    terms = model.last_loss_terms
    assert set(terms) == {"invariance_loss", "variance_loss", "covariance_loss"}
    for name, value in terms.items():
        assert not value.requires_grad and value.item() == pytest.approx(getattr(output, name).item())
    assert model.last_embeddings.shape == (12, 16) and not model.last_embeddings.requires_grad


def test_no_loss_when_not_asked():
    model = primed_eval_model(VICRegForPreTraining, tiny_config())
    with torch.no_grad():
        output = model(torch.randn(4, 2, 3, 16, 16), return_loss=False)
    assert output.loss is None and output.invariance_loss is None and output.embeddings.shape == (4, 2, 16)


def test_config_is_read_at_each_forward_and_gather_flag_is_passed(monkeypatch):
    model = primed_eval_model(VICRegForPreTraining, tiny_config(gather_distributed=False))
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return vicreg_loss(*args, **kwargs)

    monkeypatch.setattr(modeling_vicreg, "vicreg_loss", spy)
    with torch.no_grad():
        model(torch.randn(4, 2, 3, 16, 16))
        model.config.gather_distributed = True
        model.config.covariance_weight = 4.0
        model(torch.randn(4, 2, 3, 16, 16))
    assert [c["gather_distributed"] for c in calls] == [False, True]
    assert [c["covariance_weight"] for c in calls] == [1.0, 4.0]






def test_presets_build():
    method = get_method("vicreg")
    assert set(method.presets) == {"tiny", "small", "base"} and method.default_preset == "small"
    small = method.presets["small"]
    assert small.config["backbone"] == "resnet18-half" and small.training["per_device_train_batch_size"] == 256
    assert isinstance(small.training["warmup_steps"], float) and 0 < small.training["warmup_steps"] < 1
    base = method.presets["base"].config
    assert (base["backbone"], base["projection_hidden_dim"], base["projection_dim"]) == ("resnet50", 8192, 8192)
