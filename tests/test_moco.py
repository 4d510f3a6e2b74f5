"""MoCo v2 / v3: config defaults per version and validation, the loss against info_nce_loss on views encoded through
the model's parts, stop-gradient, the momentum schedule and EMA, the queue (pre-step negatives, one commit per
optimizer step, gradient accumulation), reloading, and `--version 2` from the CLI. The default version end to end
is in test_joint_embedding_cli.py."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import run_cli, step_done, tiny_backbone_config
from hf_ssl import get_method
from hf_ssl.losses.info_nce import info_nce_loss
from hf_ssl.modeling.moco import MoCoConfig, MoCoForPreTraining
from hf_ssl.nn.backbone_presets import backbone_config_from_spec

TINY_HEADS = dict(projection_hidden_dim=32, projection_dim=16, prediction_hidden_dim=32, queue_size=64)


def tiny_config(backbone: str = "resnet-test", **kwargs) -> MoCoConfig:
    backbone_config = tiny_backbone_config(backbone, 16)
    return MoCoConfig(backbone_config=backbone_config, **{**TINY_HEADS, **kwargs})


def spread_batch_norm(model: MoCoForPreTraining) -> None:
    """Give every BatchNorm the statistics of one real batch (momentum 1), so that in eval mode the embeddings are
    centred and spread out (with the initial statistics they are nearly parallel and the loss hardly depends on
    the pairing or the temperature)."""
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.momentum = 1.0
    model.train()
    model(torch.randn(64, 2, 3, 16, 16))
    if model.queue is not None:
        model.queue.discard_staged()
    # the momentum encoder gets the same statistics (ema_update copies buffers)
    step_done(model, 0.0)


@torch.no_grad()
def move_online_weights(model: MoCoForPreTraining, scale: float = 0.05) -> None:
    """Pretend an optimizer step happened: the query encoder moves away from the momentum encoder."""
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.add_(scale * torch.randn_like(parameter))


def momentum_parts_equal_online(model: MoCoForPreTraining) -> bool:
    return all(
        torch.equal(t, o)
        for target, online in model.momentum_pairs()
        for t, o in zip(target.state_dict().values(), online.state_dict().values())
    )


# ----------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip_keeps_the_resolved_values(version, backbone, tmp_path):
    config = tiny_config(backbone, version=version, temperature=0.3, gather_distributed=False)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for name in ("temperature", "momentum", "final_momentum", "symmetric", "projection_num_layers", "crop_min_scale",
                 "freeze_patch_embedding"):
        assert saved[name] is not None, name  # resolved values, not None, are what a saved config holds
    loaded = MoCoConfig.from_pretrained(tmp_path)
    assert loaded.version == version and loaded.temperature == 0.3 and loaded.gather_distributed is False
    for name in ("momentum", "final_momentum", "symmetric", "projection_num_layers", "crop_min_scale", "queue_size",
                 "freeze_patch_embedding", "projection_dim", "prediction_hidden_dim"):
        assert getattr(loaded, name) == getattr(config, name), name
    assert type(loaded.backbone_config) is type(config.backbone_config) and loaded.image_size == 16
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()


def test_paper_defaults_of_v2():
    config = MoCoConfig(version=2)
    assert config.backbone_config.model_type == "resnet" and config.image_size == 224
    assert (config.projection_hidden_dim, config.projection_dim, config.projection_num_layers) == (2048, 128, 2)
    assert (config.temperature, config.momentum, config.final_momentum, config.queue_size) == (0.2, 0.999, 0.999, 65536)
    assert config.symmetric is False and config.crop_min_scale == 0.2 and config.freeze_patch_embedding is False


def test_paper_defaults_of_v3_with_resnet_and_vit():
    config = MoCoConfig()
    assert config.version == 3  # the default version
    assert (config.projection_hidden_dim, config.projection_dim, config.prediction_hidden_dim) == (4096, 256, 4096)
    assert (config.momentum, config.final_momentum, config.symmetric) == (0.99, 1.0, True)
    # ResNet in the reference code: a 2-layer projector, tau = 1.0, crop scale from 0.2
    assert (config.projection_num_layers, config.temperature, config.crop_min_scale) == (2, 1.0, 0.2)
    assert config.freeze_patch_embedding is False
    vit, _ = backbone_config_from_spec("vit-base", image_size=224, patch_size=16)
    config = MoCoConfig(backbone_config=vit)
    assert (config.projection_num_layers, config.temperature, config.crop_min_scale) == (3, 0.2, 0.08)
    assert config.freeze_patch_embedding is True  # the ViT recipes' --stop-grad-conv1


def test_given_values_win_over_version_defaults():
    config = MoCoConfig(version=2, momentum=0.99, temperature=0.1, queue_size=4096, symmetric=True)
    assert (config.momentum, config.final_momentum) == (0.99, 0.99)  # v2's momentum stays constant
    assert (config.temperature, config.queue_size, config.symmetric) == (0.1, 4096, True)
    config = MoCoConfig(version=3, momentum=0.996, projection_num_layers=3)
    assert (config.momentum, config.final_momentum, config.projection_num_layers) == (0.996, 1.0, 3)


@pytest.mark.parametrize("bad", [
    dict(version=1), dict(version=4), dict(temperature=0.0), dict(temperature=-0.2), dict(momentum=1.5),
    dict(momentum=-0.1), dict(final_momentum=0.5), dict(projection_dim=0), dict(projection_num_layers=0),
    dict(prediction_hidden_dim=0), dict(crop_min_scale=0.0), dict(crop_min_scale=1.5),
    dict(freeze_patch_embedding=True),  # resnet has no patch embedding
])
def test_invalid_values_are_refused(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        tiny_config(**bad)


@pytest.mark.parametrize("bad", [dict(queue_size=0), dict(projection_num_layers=3)])
def test_invalid_v2_values_are_refused(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        tiny_config(version=2, **bad)


# ------------------------------------------------------------------------------------------------------ model


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_momentum_encoder_starts_equal_to_the_online_one(version, backbone):
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(backbone, version=version))
    assert momentum_parts_equal_online(model)
    assert all(not p.requires_grad for target, _ in model.momentum_pairs() for p in target.parameters())
    assert (model.queue is None) == (version == 3) and (model.predictor is None) == (version == 2)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_v3_loss_is_symmetric_info_nce_of_queries_and_momentum_keys(backbone):
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(backbone, temperature=0.3))
    spread_batch_norm(model)
    move_online_weights(model)  # so that keys from the online encoder would give another loss
    model.eval()
    pixels = torch.randn(6, 2, 3, 16, 16)
    with torch.no_grad():
        output = model(pixels)
        q1, q2 = (model.predictor(model.projector(model.encode(pixels[:, v]))) for v in (0, 1))
        k1, k2 = (model.momentum_projector(model.encode(pixels[:, v], model.momentum_backbone)) for v in (0, 1))
        online_k1, online_k2 = (model.projector(model.encode(pixels[:, v])) for v in (0, 1))
    torch.testing.assert_close(output.embeddings, torch.stack([q1, q2], 1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.key_embeddings, torch.stack([k2, k1], 1), rtol=1e-4, atol=1e-5)

    def loss(a1, b2, a2, b1, temperature=0.3, scale=True):
        return (info_nce_loss(a1, b2, temperature=temperature, scale_by_temperature=scale)
                + info_nce_loss(a2, b1, temperature=temperature, scale_by_temperature=scale)).item()

    assert output.loss.item() == pytest.approx(loss(q1, k2, q2, k1), rel=1e-5)
    # the check is sensitive: other pairings, keys from the online encoder, another tau, no 2 tau factor
    assert loss(q1, k1, q2, k2) != pytest.approx(output.loss.item(), rel=1e-3)
    assert loss(q1, k2.roll(1, 0), q2, k1.roll(1, 0)) != pytest.approx(output.loss.item(), rel=1e-3)
    assert loss(q1, online_k2, q2, online_k1) != pytest.approx(output.loss.item(), rel=1e-3)
    assert loss(q1, k2, q2, k1, temperature=0.5) != pytest.approx(output.loss.item(), rel=1e-3)
    assert loss(q1, k2, q2, k1, scale=False) != pytest.approx(output.loss.item(), rel=1e-3)
    assert model.last_embeddings.shape == (12, 16) and not model.last_embeddings.requires_grad


@pytest.mark.parametrize("symmetric", [False, True])
def test_v2_loss_is_info_nce_against_the_queue(symmetric):
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(version=2, symmetric=symmetric))
    spread_batch_norm(model)
    move_online_weights(model)
    model.eval()
    pixels = torch.randn(6, 2, 3, 16, 16)
    queue = model.queue.embeddings.clone()
    with torch.no_grad():
        output = model(pixels)
        q1, q2 = (model.projector(model.encode(pixels[:, v])) for v in (0, 1))
        k1, k2 = (model.momentum_projector(model.encode(pixels[:, v], model.momentum_backbone)) for v in (0, 1))
        online_k2 = model.projector(model.encode(pixels[:, 1]))
    one_way = info_nce_loss(q1, k2, queue=queue, temperature=0.2).item()
    other_way = info_nce_loss(q2, k1, queue=queue, temperature=0.2).item()
    expected = (one_way + other_way) / 2 if symmetric else one_way
    assert output.embeddings.shape == (6, 2 if symmetric else 1, 16)
    torch.testing.assert_close(output.key_embeddings[:, 0], k2, rtol=1e-4, atol=1e-5)
    assert output.loss.item() == pytest.approx(expected, rel=1e-5)
    # sensitive: in-batch negatives instead of the queue, the wrong positive, the online encoder's key
    assert info_nce_loss(q1, k2, temperature=0.2).item() != pytest.approx(output.loss.item(), rel=1e-3)
    assert info_nce_loss(q1, k1, queue=queue, temperature=0.2).item() != pytest.approx(one_way, rel=1e-3)
    assert info_nce_loss(q1, online_k2, queue=queue, temperature=0.2).item() != pytest.approx(one_way, rel=1e-3)
    assert not model.queue._staged  # an evaluation forward stages nothing


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_gradients_reach_the_query_encoder_and_not_the_momentum_encoder(version, backbone):
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(backbone, version=version)).train()
    output = model(torch.randn(4, 2, 3, 16, 16))
    output.loss.backward()
    assert not output.key_embeddings.requires_grad
    online = [("backbone", model.backbone), ("projector", model.projector)]
    if version == 3:
        online.append(("predictor", model.predictor))
    for name, module in online:
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(g.abs().sum().item() for g in grads) > 0, name
    for target, _ in model.momentum_pairs():
        assert all(not p.requires_grad and p.grad is None for p in target.parameters())
    frozen_patches = model.config.freeze_patch_embedding
    assert frozen_patches == (version == 3 and backbone == "vit-test")
    if frozen_patches:  # MoCo v3's random patch projection stays fixed
        patch = model.backbone.embeddings.patch_embeddings
        assert all(not p.requires_grad and p.grad is None for p in patch.parameters())


# ------------------------------------------------------------------------------------------- momentum update


@pytest.mark.parametrize("version", [2, 3])
def test_on_optimizer_step_applies_the_scheduled_ema(version):
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(version=version)).train()
    pixels = torch.randn(4, 2, 3, 16, 16)
    before = [p.clone() for p in model.momentum_projector.parameters()]
    model(pixels)
    assert all(torch.equal(a, b) for a, b in zip(before, model.momentum_projector.parameters()))  # not in forward
    move_online_weights(model, scale=1.0)
    target, online = model.momentum_projector[0].weight, model.projector[0].weight
    target_before, online_now = target.clone(), online.clone()
    progress = 0.3
    step_done(model, progress)
    # by hand: v3's cosine from 0.99 to 1 (reference adjust_moco_momentum); v2's constant 0.999
    m = 1 - (1 - 0.99) * (math.cos(math.pi * progress) + 1) / 2 if version == 3 else 0.999
    torch.testing.assert_close(target, m * target_before + (1 - m) * online_now)
    # BatchNorm running statistics of the key encoder are copied from the query encoder
    for (name, t), (_, o) in zip(model.momentum_backbone.named_buffers(), model.backbone.named_buffers()):
        assert torch.equal(t, o), name


def test_momentum_schedule_end_points():
    v3 = MoCoForPreTraining(tiny_config())
    assert v3.current_momentum(0.0) == pytest.approx(0.99) and v3.current_momentum(1.0) == pytest.approx(1.0)
    assert v3.current_momentum(0.5) == pytest.approx(0.995)
    v2 = MoCoForPreTraining(tiny_config(version=2))
    assert all(v2.current_momentum(p) == pytest.approx(0.999) for p in (0.0, 0.5, 1.0))
    # at the end of v3's schedule (m = 1) the momentum encoder no longer moves
    move_online_weights(v3, scale=1.0)
    before = [p.clone() for p in v3.momentum_projector.parameters()]
    step_done(v3, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, v3.momentum_projector.parameters()))


# ------------------------------------------------------------------------------------------------------ queue


def test_loss_uses_the_pre_step_queue_and_on_optimizer_step_commits_the_keys_once():
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(version=2)).train()
    queue = model.queue
    before, pointer = queue.embeddings.clone(), int(queue.pointer)
    output = model(torch.randn(8, 2, 3, 16, 16))
    assert torch.equal(queue.embeddings, before) and int(queue.pointer) == pointer  # nothing enqueued in forward
    query, key = output.embeddings[:, 0], output.key_embeddings[:, 0]
    assert output.loss.item() == pytest.approx(info_nce_loss(query, key, queue=before, temperature=0.2).item(), rel=1e-5)
    step_done(model, 0.1)
    assert int(queue.pointer) == pointer + 8
    torch.testing.assert_close(queue.embeddings[pointer:pointer + 8], F.normalize(key, dim=1))  # unit keys
    assert torch.equal(queue.embeddings[pointer + 8:], before[pointer + 8:])
    # with this step's keys in the queue the loss would be different: the forward did use the old queue
    after = info_nce_loss(query, key, queue=queue.embeddings, temperature=0.2).item()
    assert after != pytest.approx(output.loss.item(), rel=1e-3)
    # exactly once: another step's hook without a forward adds nothing
    committed = queue.embeddings.clone()
    step_done(model, 0.2)
    assert int(queue.pointer) == pointer + 8 and torch.equal(queue.embeddings, committed)


def test_gradient_accumulation_enqueues_both_micro_batches_once():
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(version=2)).train()
    queue = model.queue
    before = queue.embeddings.clone()
    first = model(torch.randn(8, 2, 3, 16, 16))
    second = model(torch.randn(8, 2, 3, 16, 16))
    assert torch.equal(queue.embeddings, before) and int(queue.pointer) == 0
    # both micro-batches were scored against the same pre-step queue
    for output in (first, second):
        expected = info_nce_loss(output.embeddings[:, 0], output.key_embeddings[:, 0], queue=before, temperature=0.2)
        assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    step_done(model, 0.5)
    assert int(queue.pointer) == 16 and int(queue.num_filled) == 64
    expected_rows = F.normalize(torch.cat([first.key_embeddings[:, 0], second.key_embeddings[:, 0]]), dim=1)
    torch.testing.assert_close(queue.embeddings[:16], expected_rows)
    assert torch.equal(queue.embeddings[16:], before[16:])
    step_done(model, 0.6)
    assert int(queue.pointer) == 16  # committed once


def test_symmetric_v2_enqueues_the_keys_of_both_views():
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(version=2, symmetric=True)).train()
    output = model(torch.randn(8, 2, 3, 16, 16))
    step_done(model, 0.1)
    assert int(model.queue.pointer) == 16
    enqueued = F.normalize(output.key_embeddings.transpose(0, 1).flatten(0, 1), dim=1)
    torch.testing.assert_close(model.queue.embeddings[:16], enqueued)


# ----------------------------------------------------------------------------------- training and reloading


@pytest.mark.parametrize("version,backbone", [(2, "resnet-test"), (3, "vit-test")])
def test_save_and_reload_keep_every_weight_buffer_and_frozen_part(version, backbone, tmp_path):
    torch.manual_seed(0)
    model = MoCoForPreTraining(tiny_config(backbone, version=version)).train()
    model(torch.randn(8, 2, 3, 16, 16))  # non-initial BatchNorm statistics; v2: keys staged
    move_online_weights(model)
    step_done(model, 0.5)  # momentum encoder != online; v2: queue and pointer moved
    model.save_pretrained(tmp_path)
    loaded = MoCoForPreTraining.from_pretrained(tmp_path)
    state, reloaded = model.state_dict(), loaded.state_dict()
    assert state.keys() == reloaded.keys()
    for name in state:
        assert torch.equal(state[name], reloaded[name]), name
    if version == 2:
        assert int(reloaded["queue.pointer"]) == 8
    assert not momentum_parts_equal_online(loaded)
    # transformers' loader recreates parameters with requires_grad=True; the frozen parts must stay frozen
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and frozen == {n for n, p in loaded.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize("version", [2, 3])
def test_collator_gives_two_different_normalised_views(version):
    config = tiny_config(version=version)
    collate = get_method("moco").make_collator(config)
    pipelines = [[type(op).__name__ for op in view.colour.children()] for view in collate.view_transforms]
    # v3: BYOL's asymmetric pair (solarisation on the second view only); v2: "aug+" twice, no solarisation
    assert ("RandomSolarize" in pipelines[1]) == (version == 3) and "RandomSolarize" not in pipelines[0]
    assert all("RandomGaussianBlur" in p and "ColorJitter" in p for p in pipelines)
    torch.manual_seed(0)
    examples = [{"pixel_values": torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)} for _ in range(6)]
    batch = collate(examples)
    assert batch["pixel_values"].shape == (6, 2, 3, 16, 16)
    assert not torch.allclose(batch["pixel_values"][:, 0], batch["pixel_values"][:, 1])


def test_cli_version_2_tiny_moves_the_saved_queue_pointer(tmp_path):
    out = tmp_path / "moco-v2"
    result = run_cli("pretrain", "--method", "moco", "--version", "2", "--preset", "tiny", "--backbone", "resnet-test",
                     "--max_steps", "3", "--logging_steps", "1", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    config = json.loads((out / "ssl" / "config.json").read_text())
    assert config["version"] == 2 and config["queue_size"] == 64 and config["symmetric"] is False
    weights = load_file(str(out / "ssl" / "model.safetensors"))
    batch = 32  # the tiny preset's per-device batch
    assert int(weights["queue.pointer"]) == (3 * batch) % 64
    assert "momentum_backbone.embedder.embedder.convolution.weight" in weights
