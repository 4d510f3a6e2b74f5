"""SimSiam: config round trip and validation, the loss against negative_cosine_similarity on per-view encodings,
the stop-gradient on z (gradient of the loss w.r.t. z only through the predictor), gradients, no per-step state,
reloading, and training. The CLI end to end is in test_joint_embedding_cli.py."""

import pytest
import torch

from conftest import tiny_backbone_config
import torch.nn.functional as F

from hf_ssl.losses.negative_cosine import negative_cosine_similarity
from hf_ssl.modeling.simsiam import SimSiamConfig, SimSiamForPreTraining
from hf_ssl.modeling.method_model import MethodModel

HEADS = dict(projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=8)


def tiny_config(backbone: str = "resnet-test", **kwargs) -> SimSiamConfig:
    backbone_config = tiny_backbone_config(backbone, 16)
    return SimSiamConfig(backbone_config=backbone_config, **{**HEADS, **kwargs})


def symmetric_loss(p1, p2, z1, z2, stop_gradient: bool) -> torch.Tensor:
    """Alg. 1 written out by hand: L = D(p1, z2) / 2 + D(p2, z1) / 2, D(p, z) = -<p / |p|, z / |z|> averaged."""
    def D(p, z):
        if stop_gradient:
            z = z.detach()
        return -(F.normalize(p, dim=1) * F.normalize(z, dim=1)).sum(dim=1).mean()

    return D(p1, z2) / 2 + D(p2, z1) / 2


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip(backbone, tmp_path):
    config = tiny_config(backbone, crop_min_scale=0.3, jitter_strength=0.8, blur_probability=0.0)
    config.save_pretrained(tmp_path)
    loaded = SimSiamConfig.from_pretrained(tmp_path)
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()
    assert (loaded.crop_min_scale, loaded.jitter_strength, loaded.blur_probability) == (0.3, 0.8, 0.0)
    assert (loaded.projection_hidden_dim, loaded.projection_dim, loaded.prediction_hidden_dim) == (32, 16, 8)
    assert loaded.image_size == 16 and loaded.model_type == "hf_ssl_simsiam"


def test_paper_defaults():
    config = SimSiamConfig()
    assert config.backbone_config.model_type == "resnet" and config.image_size == 224
    # Sec. 4: projection MLP 2048 (3 layers), prediction MLP 2048 -> 512 -> 2048; MoCo v2's augmentation
    assert (config.projection_hidden_dim, config.projection_dim, config.prediction_hidden_dim) == (2048, 2048, 512)
    assert (config.crop_min_scale, config.jitter_strength) == (0.2, 0.5)
    assert (config.blur_probability, config.grayscale_probability) == (0.5, 0.2)


def test_heads_have_the_paper_architecture():
    model = SimSiamForPreTraining(SimSiamConfig())
    layers = [type(m).__name__ for m in model.projector]
    assert layers == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear", "BatchNorm1d"]  # BN on the output, no ReLU
    assert [m.out_features for m in model.projector if isinstance(m, torch.nn.Linear)] == [2048, 2048, 2048]
    assert [type(m).__name__ for m in model.predictor] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [m.out_features for m in model.predictor if isinstance(m, torch.nn.Linear)] == [512, 2048]


@pytest.mark.parametrize("bad", [dict(projection_dim=0), dict(projection_hidden_dim=-1), dict(prediction_hidden_dim=0),
                                 dict(crop_min_scale=0.0), dict(crop_min_scale=1.5), dict(jitter_strength=-0.1),
                                 dict(blur_probability=1.1), dict(grayscale_probability=-0.1),
                                 dict(initializer_range=0.0)])
def test_invalid_values_are_refused(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        tiny_config(**bad)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_the_symmetric_negative_cosine_of_each_view_encoded_separately(backbone):
    torch.manual_seed(0)
    model = SimSiamForPreTraining(tiny_config(backbone))
    # BatchNorm with the statistics of a real batch (momentum 1), then eval mode: encoding the views together or
    # apart must agree, and the outputs are spread out so that the loss depends on the pairing.
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 2, 3, 16, 16))
    model.eval()
    pixels = torch.randn(5, 2, 3, 16, 16)
    with torch.no_grad():
        output = model(pixels)
        z1, z2 = (model.projector(model.encode(pixels[:, v])) for v in (0, 1))
        p1, p2 = model.predictor(z1), model.predictor(z2)
    torch.testing.assert_close(output.embeddings, torch.stack([z1, z2], 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.predictions, torch.stack([p1, p2], 1), rtol=1e-4, atol=1e-5)
    expected = negative_cosine_similarity(p1, z2) / 2 + negative_cosine_similarity(p2, z1) / 2
    assert output.loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert expected.item() == pytest.approx(symmetric_loss(p1, p2, z1, z2, True).item(), abs=1e-6)  # = Alg. 1
    # the check is sensitive: same-view pairs, other images, or z compared with z give another loss
    assert (negative_cosine_similarity(p1, z1) / 2 + negative_cosine_similarity(p2, z2) / 2).item() != pytest.approx(
        output.loss.item(), abs=1e-3)
    assert (negative_cosine_similarity(p1, z2.roll(1, 0)) / 2 + negative_cosine_similarity(p2, z1.roll(1, 0)) / 2
            ).item() != pytest.approx(output.loss.item(), abs=1e-3)
    assert (negative_cosine_similarity(z1, z2) / 2 + negative_cosine_similarity(z2, z1) / 2).item() != pytest.approx(
        output.loss.item(), abs=1e-3)
    # the collapse monitor sees z (2B, d), detached, view-major
    assert model.last_embeddings.shape == (10, 16) and not model.last_embeddings.requires_grad
    torch.testing.assert_close(model.last_embeddings, torch.cat([z1, z2]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_stop_gradient_no_gradient_reaches_z_through_the_target_branch(backbone):
    """dL/dz of the model = the gradient through p = h(z) alone (z as a target is a constant, Alg. 1), and differs
    from what the same loss written without the detach gives (which also differentiates through z as target)."""
    torch.manual_seed(0)
    model = SimSiamForPreTraining(tiny_config(backbone)).train()
    captured = {}

    def keep_z(module, inputs, z):
        z.retain_grad()
        captured["z"] = z

    handle = model.projector.register_forward_hook(keep_z)
    output = model(torch.randn(8, 2, 3, 16, 16))
    handle.remove()
    output.loss.backward()
    z = captured["z"]
    model_grad = z.grad

    def grad_wrt_z(stop_gradient: bool) -> torch.Tensor:
        leaf = z.detach().clone().requires_grad_(True)  # the same z, as a leaf; p recomputed from it
        p = model.predictor(leaf)
        (p1, p2), (z1, z2) = p.chunk(2), leaf.chunk(2)
        return torch.autograd.grad(symmetric_loss(p1, p2, z1, z2, stop_gradient), leaf)[0]

    with_stop_gradient, without_stop_gradient = grad_wrt_z(True), grad_wrt_z(False)
    torch.testing.assert_close(model_grad, with_stop_gradient, rtol=1e-4, atol=1e-7)
    target_branch_grad = without_stop_gradient - with_stop_gradient  # what the detach removes
    assert target_branch_grad.abs().max() > 100 * (model_grad - with_stop_gradient).abs().max() + 1e-6
    assert not torch.allclose(model_grad, without_stop_gradient, rtol=1e-2, atol=1e-6)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_gradient_reaches_backbone_projector_and_predictor(backbone):
    torch.manual_seed(0)
    model = SimSiamForPreTraining(tiny_config(backbone)).train()
    model(torch.randn(4, 2, 3, 16, 16)).loss.backward()
    for name in ("backbone", "projector", "predictor"):
        grads = [p.grad for p in getattr(model, name).parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(g.abs().sum().item() for g in grads) > 0, name


def test_no_momentum_encoder_and_no_per_step_state():
    model = SimSiamForPreTraining(tiny_config())
    assert model.momentum_pairs() == []
    assert type(model).on_optimizer_step is MethodModel.on_optimizer_step  # the contract's no-op
    assert model.exported_model() is model.backbone


def test_collator_gives_two_mocov2_views():
    from hf_ssl import get_method

    collate = get_method("simsiam").make_collator(tiny_config())
    torch.manual_seed(0)
    examples = [{"pixel_values": torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)} for _ in range(6)]
    batch = collate(examples)
    assert batch["pixel_values"].shape == (6, 2, 3, 16, 16)
    assert not torch.allclose(batch["pixel_values"][:, 0], batch["pixel_values"][:, 1])
    for pipeline in collate.view_transforms.transforms:  # MoCo v2: crop 0.2-1, jitter 0.4/0.4/0.4/0.1, blur 0.5
        ops = {type(op).__name__: op for op in pipeline.colour.children()}
        assert ops["RandomResizedCrop"]._param_generator.scale == (0.2, 1.0)
        jitter = ops["ColorJitter"]
        assert jitter.p == 0.8
        strengths = [jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue]
        assert strengths == pytest.approx([0.4, 0.4, 0.4, 0.1])
        assert ops["RandomGrayscale"].p == 0.2 and ops["RandomGaussianBlur"].p == 0.5
