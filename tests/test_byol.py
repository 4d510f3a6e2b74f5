"""BYOL: config round trip and validation, the loss against byol_loss on per-view encodings through the online
and target parts, the stop-gradient on the target, the EMA schedule and update (only in on_optimizer_step), the
target equal to the online network at init, reloading, and training. The CLI end to end is in
test_joint_embedding_cli.py."""

import math

import pytest
import torch

from conftest import step_done, tiny_backbone_config

from hf_ssl.losses.negative_cosine import byol_loss
from hf_ssl.modeling.byol import BYOLConfig, BYOLForPreTraining

HEADS = dict(projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=24)


def tiny_config(backbone: str = "resnet-test", **kwargs) -> BYOLConfig:
    backbone_config = tiny_backbone_config(backbone, 16)
    return BYOLConfig(backbone_config=backbone_config, **{**HEADS, **kwargs})


def target_and_online_states(model):
    return [(target.state_dict(), online.state_dict()) for target, online in model.momentum_pairs()]


@torch.no_grad()
def perturb(module, scale=0.1):
    for param in module.parameters():
        param.add_(scale * torch.randn_like(param))


def batchnorm_from_one_batch(model, pixels):
    """Give BatchNorm the statistics of a real batch (momentum 1: running stats = that batch's), so that in eval
    mode the outputs are centred and spread out and the loss depends on which outputs are paired."""
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(pixels)
    model.eval()


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip(backbone, tmp_path):
    config = tiny_config(backbone, base_momentum=0.99, crop_min_scale=0.3)
    config.save_pretrained(tmp_path)
    loaded = BYOLConfig.from_pretrained(tmp_path)
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()
    assert loaded.base_momentum == 0.99 and loaded.crop_min_scale == 0.3
    assert (loaded.projection_hidden_dim, loaded.projection_dim, loaded.prediction_hidden_dim) == (32, 16, 24)
    assert loaded.image_size == 16 and loaded.model_type == "hf_ssl_byol"


def test_paper_defaults():
    config = BYOLConfig()
    assert config.backbone_config.model_type == "resnet" and config.image_size == 224
    # Sec. 3.3: projector and predictor 4096 -> 256, tau_base 0.996; Table 6: crop scale 0.08-1
    assert (config.projection_hidden_dim, config.projection_dim, config.prediction_hidden_dim) == (4096, 256, 4096)
    assert config.base_momentum == 0.996 and config.crop_min_scale == 0.08


@pytest.mark.parametrize("bad", [dict(projection_dim=0), dict(projection_hidden_dim=-1), dict(prediction_hidden_dim=0),
                                 dict(base_momentum=1.5), dict(base_momentum=-0.1), dict(crop_min_scale=0.0),
                                 dict(crop_min_scale=1.2), dict(initializer_range=0.0)])
def test_invalid_values_are_refused(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        tiny_config(**bad)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_target_equals_online_at_init_and_is_frozen(backbone):
    torch.manual_seed(0)
    model = BYOLForPreTraining(tiny_config(backbone))
    assert len(model.momentum_pairs()) == 2
    for target_state, online_state in target_and_online_states(model):
        assert target_state.keys() == online_state.keys()
        for name in target_state:
            assert torch.equal(target_state[name], online_state[name]), name
            assert target_state[name].data_ptr() != online_state[name].data_ptr(), name  # a copy, not shared
    target_params = list(model.target_backbone.parameters()) + list(model.target_projector.parameters())
    assert target_params and not any(p.requires_grad for p in target_params)
    assert model.exported_model() is model.backbone  # the paper evaluates the online encoder


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_byol_loss_of_online_predictions_and_target_projections(backbone):
    torch.manual_seed(0)
    model = BYOLForPreTraining(tiny_config(backbone))
    perturb(model.target_backbone)  # as after training: the target lags the online network
    perturb(model.target_projector)
    batchnorm_from_one_batch(model, torch.randn(64, 2, 3, 16, 16))
    pixels = torch.randn(5, 2, 3, 16, 16)
    with torch.no_grad():
        output = model(pixels)
        z1, z2 = (model.projector(model.encode(pixels[:, v])) for v in (0, 1))
        p1, p2 = model.predictor(z1), model.predictor(z2)
        t1, t2 = (model.target_projector(model.encode(pixels[:, v], backbone=model.target_backbone)) for v in (0, 1))
    torch.testing.assert_close(output.embeddings, torch.stack([z1, z2], 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.predictions, torch.stack([p1, p2], 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.target_embeddings, torch.stack([t1, t2], 1), rtol=1e-4, atol=1e-5)
    expected = byol_loss(p1, t2) + byol_loss(p2, t1)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the check is sensitive: the online projections instead of the target's, or the same view, give another loss
    assert (byol_loss(p1, z2) + byol_loss(p2, z1)).item() != pytest.approx(output.loss.item(), rel=1e-3)
    assert (byol_loss(p1, t1) + byol_loss(p2, t2)).item() != pytest.approx(output.loss.item(), rel=1e-3)
    assert model.last_embeddings.shape == (10, 16) and not model.last_embeddings.requires_grad


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_gradient_reaches_the_online_network_and_not_the_target(backbone):
    torch.manual_seed(0)
    model = BYOLForPreTraining(tiny_config(backbone)).train()
    output = model(torch.randn(4, 2, 3, 16, 16))
    assert not output.target_embeddings.requires_grad  # stop-gradient: no graph through the target
    output.loss.backward()
    for name in ("backbone", "projector", "predictor"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(g.abs().sum().item() for g in grads) > 0, name
    for name in ("target_backbone", "target_projector"):
        assert all(p.grad is None and not p.requires_grad for p in getattr(model, name).parameters()), name


def test_target_momentum_follows_the_cosine_schedule():
    model = BYOLForPreTraining(tiny_config())

    def paper(k, base):  # Sec. 3.3: tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2
        return 1 - (1 - base) * (math.cos(math.pi * k) + 1) / 2

    assert model.target_momentum(0.0) == pytest.approx(0.996, abs=1e-12)
    assert model.target_momentum(0.5) == pytest.approx(0.998, abs=1e-12)
    assert model.target_momentum(1.0) == pytest.approx(1.0, abs=1e-12)
    for progress in (0.0, 0.1, 0.5, 0.77, 1.0):
        assert model.target_momentum(progress) == pytest.approx(paper(progress, 0.996), abs=1e-12)
    model.config.base_momentum = 0.9
    assert model.target_momentum(0.25) == pytest.approx(paper(0.25, 0.9), abs=1e-12)


@pytest.mark.parametrize("progress", [0.0, 0.5, 1.0])
def test_on_optimizer_step_applies_the_ema_with_the_scheduled_coefficient(progress):
    torch.manual_seed(0)
    model = BYOLForPreTraining(tiny_config()).train()
    model(torch.randn(8, 2, 3, 16, 16))  # online BatchNorm running statistics move away from the target's
    perturb(model.backbone)  # as after an optimizer step
    perturb(model.projector)
    weight_name = "encoder.stages.1.layers.0.layer.0.convolution.weight"
    online_weight = model.backbone.get_parameter(weight_name).detach().clone()
    target_weight = model.target_backbone.get_parameter(weight_name).detach().clone()
    online_head = model.projector[0].weight.detach().clone()
    target_head = model.target_projector[0].weight.detach().clone()
    online_predictor = [p.detach().clone() for p in model.predictor.parameters()]
    assert not torch.allclose(online_weight, target_weight)

    step_done(model, progress)
    tau = 1 - (1 - 0.996) * (math.cos(math.pi * progress) + 1) / 2
    torch.testing.assert_close(model.target_backbone.get_parameter(weight_name),
                               tau * target_weight + (1 - tau) * online_weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.target_projector[0].weight, tau * target_head + (1 - tau) * online_head,
                               rtol=0, atol=1e-6)
    if progress == 1.0:  # tau = 1 at the end of training: the target no longer moves
        assert torch.equal(model.target_backbone.get_parameter(weight_name), target_weight)
    # the online network is untouched; BatchNorm statistics are copied from it
    assert torch.equal(model.backbone.get_parameter(weight_name), online_weight)
    assert all(torch.equal(a, b) for a, b in zip(model.predictor.parameters(), online_predictor))
    torch.testing.assert_close(model.target_projector[1].running_mean, model.projector[1].running_mean, rtol=0, atol=0)


def test_forward_never_moves_the_target():
    """The EMA is a per-optimizer-step side effect: with gradient accumulation forward runs several times per
    step, so it must not update the target (only on_optimizer_step does)."""
    torch.manual_seed(0)
    model = BYOLForPreTraining(tiny_config()).train()
    perturb(model.backbone)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if name.startswith("target_")}
    for _ in range(3):
        model(torch.randn(4, 2, 3, 16, 16)).loss.backward()
    for name, param in model.named_parameters():
        if name.startswith("target_"):
            assert torch.equal(param, before[name]), name


def test_collator_gives_two_asymmetric_views():
    from hf_ssl import get_method

    config = tiny_config(crop_min_scale=0.3)
    collate = get_method("byol").make_collator(config)
    torch.manual_seed(0)
    examples = [{"pixel_values": torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)} for _ in range(6)]
    batch = collate(examples)
    assert batch["pixel_values"].shape == (6, 2, 3, 16, 16)
    assert not torch.allclose(batch["pixel_values"][:, 0], batch["pixel_values"][:, 1])
    # Table 6: blur p = 1.0 / 0.1, solarisation p = 0 / 0.2; the configured crop scale in both
    ops = [{type(op).__name__: op for op in pipeline.colour.children()}
           for pipeline in collate.view_transforms.transforms]
    assert ops[0]["RandomGaussianBlur"].p == 1.0 and "RandomSolarize" not in ops[0]
    assert ops[1]["RandomGaussianBlur"].p == 0.1 and ops[1]["RandomSolarize"].p == 0.2
    assert all(view["RandomResizedCrop"]._param_generator.scale == (0.3, 1.0) for view in ops)
