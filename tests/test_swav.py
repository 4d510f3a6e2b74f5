"""SwAV: config round trip and validation, the loss against swav_loss with Sinkhorn-Knopp codes of separately encoded
crops, frozen prototypes, per-step prototype normalisation and queue commits, gradients, reloading. The CLI end to
end is in test_joint_embedding_cli.py."""

import math

import pytest
import torch

from conftest import random_crops, step_done, tiny_backbone_config
import torch.nn.functional as F

from hf_ssl.losses.swav import sinkhorn_knopp, swav_loss
from hf_ssl.data.collators import multi_crop_collator as make_collator
from hf_ssl.modeling.swav import SwAVConfig, SwAVForPreTraining
from hf_ssl.nn.backbone import is_token_backbone

GLOBAL, LOCAL = 16, 8


def tiny_config(backbone: str = "resnet-test", **kwargs) -> SwAVConfig:
    backbone_config = tiny_backbone_config(backbone, GLOBAL)
    defaults = dict(projection_hidden_dim=32, projection_dim=16, num_prototypes=24, num_local_crops=2,
                    local_crop_size=LOCAL, freeze_prototypes_steps=0)
    return SwAVConfig(backbone_config=backbone_config, **{**defaults, **kwargs})


def crops(batch: int = 6, num_local: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_crops(batch, num_local, GLOBAL, LOCAL, seed)


def spread_batch_norm(model: SwAVForPreTraining) -> None:
    """Give BatchNorm the statistics of a real batch (momentum 1: running stats = that batch's), so that in eval
    mode the features are centred and spread out (with the initial stats they are nearly parallel and the loss
    hardly depends on the codes or the temperature)."""
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(**crops(64, seed=1))


def separately_encoded(model: SwAVForPreTraining, views: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) crops of one view -> (B, K) prototype scores, through the model's parts one view at a time."""
    if is_token_backbone(model.config.backbone_config):  # the [CLS] token, position embeddings interpolated
        features = model.backbone(pixel_values=views, interpolate_pos_encoding=True).last_hidden_state[:, 0]
    else:
        features = model.backbone(pixel_values=views).pooler_output.flatten(1)
    z = F.normalize(model.projector(features), dim=1)
    return z @ model.prototypes.weight.T


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip(backbone, tmp_path):
    config = tiny_config(backbone, temperature=0.2, sinkhorn_epsilon=0.03, queue_length=12, queue_start=0.4,
                         freeze_prototypes_steps=7, local_crop_min_scale=0.1, gather_distributed=False)
    config.save_pretrained(tmp_path)
    loaded = SwAVConfig.from_pretrained(tmp_path)
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()
    assert (loaded.temperature, loaded.sinkhorn_epsilon, loaded.queue_length, loaded.queue_start) == (0.2, 0.03, 12, 0.4)
    assert (loaded.num_prototypes, loaded.freeze_prototypes_steps, loaded.num_local_crops) == (24, 7, 2)
    assert loaded.local_crop_size == LOCAL and loaded.local_crop_min_scale == 0.1 and loaded.gather_distributed is False
    assert loaded.image_size == GLOBAL and loaded.patch_size == (4 if backbone.startswith("vit") else 1)


def test_paper_defaults():
    config = SwAVConfig()
    assert config.backbone_config.model_type == "resnet" and config.image_size == 224
    assert config.backbone_config.hidden_sizes[-1] == 2048  # ResNet-50
    assert (config.projection_hidden_dim, config.projection_dim, config.num_prototypes) == (2048, 128, 3000)
    assert (config.temperature, config.sinkhorn_epsilon, config.sinkhorn_iterations) == (0.1, 0.05, 3)
    assert (config.num_local_crops, config.local_crop_size) == (6, 96)
    assert (config.global_crop_min_scale, config.global_crop_max_scale) == (0.14, 1.0)
    assert (config.local_crop_min_scale, config.local_crop_max_scale) == (0.05, 0.14)
    assert config.freeze_prototypes_steps == 313 and config.queue_length == 0 and config.gather_distributed is True


@pytest.mark.parametrize("bad", [
    dict(temperature=0.0), dict(sinkhorn_epsilon=-0.1), dict(sinkhorn_iterations=0), dict(num_prototypes=0),
    dict(projection_dim=0), dict(freeze_prototypes_steps=-1), dict(queue_length=-1), dict(queue_start=1.5),
    dict(num_local_crops=-1), dict(local_crop_size=GLOBAL), dict(local_crop_size=0),
    dict(local_crop_min_scale=0.0), dict(global_crop_min_scale=0.5, global_crop_max_scale=0.4),
])
def test_invalid_values_are_refused(bad):
    with pytest.raises(Exception, match=next(iter(bad))):
        tiny_config(**bad)


def test_local_crops_must_fit_vit_patches_but_may_be_anything_without_local_crops():
    with pytest.raises(Exception, match="multiple of patch_size 4"):
        tiny_config("vit-test", local_crop_size=6)
    assert tiny_config("vit-test", num_local_crops=0, local_crop_size=GLOBAL).num_local_crops == 0


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_swav_loss_of_sinkhorn_codes_of_separately_encoded_crops(backbone):
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config(backbone, temperature=0.2))
    spread_batch_norm(model)
    model.eval()
    views = crops(8)
    with torch.no_grad():
        output = model(**views)
        scores = [separately_encoded(model, views["pixel_values"][:, v]) for v in range(2)]
        scores += [separately_encoded(model, views["local_pixel_values"][:, v]) for v in range(2)]
        codes = {i: sinkhorn_knopp(scores[i], epsilon=0.05, iterations=3) for i in range(2)}
    assert output.prototype_scores.shape == (8, 4, 24) and output.codes.shape == (8, 2, 24)
    for v in range(4):
        torch.testing.assert_close(output.prototype_scores[:, v], scores[v], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(output.codes[:, 0], codes[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(output.codes[:, 1], codes[1], rtol=1e-4, atol=1e-6)
    expected = swav_loss(scores, codes, temperature=0.2)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the check is sensitive: swapped codes, another temperature, or codes from softmax instead of Sinkhorn-Knopp
    # (no equipartition) all give another loss
    others = [
        swav_loss(scores, {0: codes[1], 1: codes[0]}, temperature=0.2),
        swav_loss(scores, codes, temperature=0.1),
        swav_loss(scores, {i: F.softmax(scores[i] / 0.05, dim=1) for i in range(2)}, temperature=0.2),
        swav_loss(scores[:2], codes, temperature=0.2),  # without the local crops
    ]
    for other in others:
        assert other.item() != pytest.approx(output.loss.item(), rel=1e-3)
    assert model.last_embeddings.shape == (16, 16) and not model.last_embeddings.requires_grad


def test_two_crops_without_local_crops():
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config(num_local_crops=0)).eval()
    views = crops(5, num_local=0)
    with torch.no_grad():
        output = model(**views)
    scores = output.prototype_scores
    expected = swav_loss([scores[:, 0], scores[:, 1]], {0: output.codes[:, 0], 1: output.codes[:, 1]}, 0.1)
    assert output.embeddings.shape == (5, 2, 16) and output.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_prototypes_are_frozen_for_the_first_steps_then_trained():
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config(freeze_prototypes_steps=2)).train()
    views = crops(8)
    for step in range(4):
        model.zero_grad()
        model(**views).loss.backward()
        prototype_grad = model.prototypes.weight.grad
        projector_grad = sum(p.grad.abs().sum().item() for p in model.projector.parameters())
        assert prototype_grad is not None and projector_grad > 0
        if step < 2:
            assert torch.count_nonzero(prototype_grad) == 0, step
        else:
            assert prototype_grad.abs().sum().item() > 0, step
        step_done(model, (step + 1) / 4)
    assert int(model.num_optimizer_steps) == 4


def test_prototypes_are_normalised_at_init_and_once_per_on_optimizer_step_not_in_forward():
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config()).train()
    torch.testing.assert_close(model.prototypes.weight.norm(dim=1), torch.ones(24))  # also after post_init
    with torch.no_grad():
        model.prototypes.weight.mul_(torch.linspace(0.5, 3.0, 24).unsqueeze(1))
    scaled = model.prototypes.weight.detach().clone()
    model(**crops())
    model(**crops(seed=3))
    assert torch.equal(model.prototypes.weight, scaled) and int(model.num_optimizer_steps) == 0
    step_done(model, 0.5)
    torch.testing.assert_close(model.prototypes.weight.norm(dim=1), torch.ones(24))
    torch.testing.assert_close(model.prototypes.weight, F.normalize(scaled, dim=1))  # directions kept
    assert int(model.num_optimizer_steps) == 1 and model.progress.item() == 0.5


def test_queue_is_filled_by_on_optimizer_step_and_used_for_the_codes_once_full():
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config(queue_length=6, queue_start=0.0)).train()
    queue = model.queues[0]
    first = model(**crops(4, seed=0))
    assert int(queue.num_filled) == 0 and torch.count_nonzero(queue.embeddings) == 0  # staged, not enqueued
    step_done(model, 0.25)
    assert int(queue.num_filled) == 4
    torch.testing.assert_close(queue.embeddings[:4], first.embeddings[:, 0].detach())
    torch.testing.assert_close(model.queues[1].embeddings[:4], first.embeddings[:, 1].detach())
    # not full yet: the codes are those of the batch alone
    second = model(**crops(4, seed=1))
    torch.testing.assert_close(second.codes[:, 0], sinkhorn_knopp(second.prototype_scores[:, 0].detach()))
    step_done(model, 0.5)
    assert queue.is_full
    # full: Sinkhorn-Knopp over the queued features and the batch, keeping the batch's rows
    model.eval()  # an evaluation forward uses the queue but adds nothing to it
    with torch.no_grad():
        third = model(**crops(4, seed=2))
    scores = third.prototype_scores[:, 0]
    expected = sinkhorn_knopp(torch.cat([queue.embeddings @ model.prototypes.weight.T, scores]))[-4:]
    torch.testing.assert_close(third.codes[:, 0], expected)
    assert not torch.allclose(third.codes[:, 0], sinkhorn_knopp(scores), atol=1e-3)
    pointer = int(queue.pointer)
    step_done(model, 0.75)
    assert int(queue.pointer) == pointer


def test_queue_starts_filling_at_queue_start():
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config(queue_length=8, queue_start=0.5)).train()
    model(**crops(4))
    step_done(model, 0.25)
    assert int(model.queues[0].num_filled) == 0
    model(**crops(4))  # progress 0.25 < 0.5: nothing staged
    step_done(model, 0.5)
    assert int(model.queues[0].num_filled) == 0
    model(**crops(4))
    step_done(model, 0.75)
    assert int(model.queues[0].num_filled) == 4


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_gradient_reaches_backbone_projector_and_prototypes(backbone):
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config(backbone)).train()
    model(**crops(4)).loss.backward()
    for name, module in (("backbone", model.backbone), ("projector", model.projector), ("prototypes", model.prototypes)):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(g.abs().sum().item() for g in grads) > 0, name


@pytest.mark.parametrize("num_local", [0, 3])
def test_collator_gives_global_and_local_crops(num_local):
    config = tiny_config(num_local_crops=num_local)
    collate = make_collator(config)
    torch.manual_seed(0)
    batch = collate([{"pixel_values": torch.randint(0, 256, (3, GLOBAL, GLOBAL), dtype=torch.uint8)} for _ in range(6)])
    assert batch["pixel_values"].shape == (6, 2, 3, GLOBAL, GLOBAL)
    assert not torch.allclose(batch["pixel_values"][:, 0], batch["pixel_values"][:, 1])
    if num_local:
        assert batch["local_pixel_values"].shape == (6, num_local, 3, LOCAL, LOCAL)
    else:
        assert "local_pixel_values" not in batch
    output = SwAVForPreTraining(config)(**batch)
    assert output.embeddings.shape[1] == 2 + num_local and math.isfinite(output.loss.item())


def test_save_and_reload_keep_every_weight_and_buffer_and_the_freeze(tmp_path):
    torch.manual_seed(0)
    model = SwAVForPreTraining(tiny_config(queue_length=8, queue_start=0.0, freeze_prototypes_steps=2)).train()
    model(**crops(4))  # non-initial BatchNorm statistics, staged queue rows
    step_done(model, 0.5)
    model.save_pretrained(tmp_path)
    loaded = SwAVForPreTraining.from_pretrained(tmp_path)
    state, reloaded = model.state_dict(), loaded.state_dict()
    assert state.keys() == reloaded.keys()
    assert {"num_optimizer_steps", "progress", "queues.0.embeddings", "queues.1.num_filled"} <= set(state)
    for name in state:
        assert torch.equal(state[name], reloaded[name]), name
    assert int(loaded.num_optimizer_steps) == 1 and int(loaded.queues[0].num_filled) == 4
    # still within the freeze after reloading (1 of 2 steps): the prototypes get a zero gradient
    loaded.train()
    loaded(**crops(4)).loss.backward()
    assert torch.count_nonzero(loaded.prototypes.weight.grad) == 0
