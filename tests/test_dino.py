"""DINO: config round trip and validation, the teacher-temperature and momentum schedules, the EMA teacher (no
gradient, exported), the centre (updated once per on_optimizer_step from the staged teacher outputs), the loss against
dino_loss of separately encoded crops, the frozen last layer, reloading. The CLI end to end is in
test_joint_embedding_cli.py."""

import math

import pytest
import torch

from conftest import random_crops, step_done, tiny_backbone_config

from hf_ssl.losses.dino import dino_loss
from hf_ssl.data.collators import multi_crop_collator as make_collator
from hf_ssl.modeling.dino import DINOConfig, DINOForPreTraining
from hf_ssl.nn.backbone import is_token_backbone

GLOBAL, LOCAL = 16, 8


def tiny_config(backbone: str = "resnet-test", **kwargs) -> DINOConfig:
    backbone_config = tiny_backbone_config(backbone, GLOBAL)
    defaults = dict(head_hidden_dim=32, head_bottleneck_dim=16, head_output_dim=48, num_local_crops=2,
                    local_crop_size=LOCAL, freeze_last_layer_steps=0)
    return DINOConfig(backbone_config=backbone_config, **{**defaults, **kwargs})


def crops(batch: int = 6, num_local: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    return random_crops(batch, num_local, GLOBAL, LOCAL, seed)


def features(model: DINOForPreTraining, backbone, views: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) crops of one view -> (B, D) through `backbone` alone: [CLS] (position embeddings interpolated
    for the small crops) or the conv pooler."""
    if is_token_backbone(model.config.backbone_config):
        return backbone(pixel_values=views, interpolate_pos_encoding=True).last_hidden_state[:, 0]
    return backbone(pixel_values=views).pooler_output.flatten(1)


def perturb_student(model: DINOForPreTraining) -> None:
    """Move the student away from the teacher (they start equal), as training does."""
    with torch.no_grad():
        for parameter in list(model.backbone.parameters()) + list(model.head.parameters()):
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_config_round_trip(backbone, tmp_path):
    config = tiny_config(backbone, teacher_temperature=0.05, warmup_teacher_temperature=0.02,
                         teacher_temperature_warmup=0.1, center_momentum=0.8, norm_last_layer=False,
                         freeze_last_layer_steps=5, local_crop_max_scale=0.3)
    config.save_pretrained(tmp_path)
    loaded = DINOConfig.from_pretrained(tmp_path)
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()
    assert (loaded.teacher_temperature, loaded.warmup_teacher_temperature, loaded.teacher_temperature_warmup) == (0.05, 0.02, 0.1)
    assert loaded.center_momentum == 0.8 and loaded.norm_last_layer is False and loaded.freeze_last_layer_steps == 5
    assert (loaded.head_output_dim, loaded.num_local_crops, loaded.local_crop_size, loaded.local_crop_max_scale) == (48, 2, LOCAL, 0.3)
    assert loaded.image_size == GLOBAL and loaded.patch_size == (4 if backbone.startswith("vit") else 1)


def test_paper_defaults():
    config = DINOConfig()
    assert config.backbone_config.model_type == "vit" and (config.image_size, config.patch_size) == (224, 16)
    assert (config.head_hidden_dim, config.head_bottleneck_dim, config.head_output_dim, config.head_num_layers) == (2048, 256, 65536, 3)
    assert config.norm_last_layer is True
    assert (config.student_temperature, config.warmup_teacher_temperature, config.teacher_temperature) == (0.1, 0.04, 0.07)
    assert config.teacher_temperature_warmup == 0.3  # 30 of 100 epochs
    assert (config.teacher_momentum, config.center_momentum) == (0.996, 0.9)
    assert (config.num_local_crops, config.local_crop_size) == (8, 96)
    assert (config.global_crop_min_scale, config.global_crop_max_scale) == (0.4, 1.0)
    assert (config.local_crop_min_scale, config.local_crop_max_scale) == (0.05, 0.4)


@pytest.mark.parametrize("bad", [
    dict(student_temperature=0.0), dict(teacher_temperature=-0.07), dict(warmup_teacher_temperature=0.0),
    dict(teacher_temperature_warmup=1.5), dict(teacher_momentum=1.2), dict(center_momentum=1.0),
    dict(head_output_dim=0), dict(head_num_layers=0), dict(freeze_last_layer_steps=-1), dict(num_local_crops=-2),
    dict(local_crop_size=GLOBAL + 4), dict(local_crop_min_scale=0.5, local_crop_max_scale=0.4),
    dict(global_crop_max_scale=1.5),
])
def test_invalid_values_are_refused(bad):
    with pytest.raises(Exception, match=next(iter(bad)).replace("_max_scale", "_min_scale")):
        tiny_config(**bad)


def test_teacher_temperature_warms_up_linearly_then_stays():
    model = DINOForPreTraining(tiny_config(warmup_teacher_temperature=0.04, teacher_temperature=0.07,
                                           teacher_temperature_warmup=0.3))
    assert model.teacher_temperature() == pytest.approx(0.04)  # progress 0 at init
    assert model.teacher_temperature(0.15) == pytest.approx(0.055)  # half-way through the warm-up
    assert model.teacher_temperature(0.3) == pytest.approx(0.07)  # end of the warm-up
    assert model.teacher_temperature(1.0) == pytest.approx(0.07)
    step_done(model, 0.15)  # the model's own schedule follows the progress on_optimizer_step stores
    assert model.teacher_temperature() == pytest.approx(0.055)
    no_warmup = DINOForPreTraining(tiny_config(teacher_temperature_warmup=0.0))
    assert no_warmup.teacher_temperature() == pytest.approx(0.07)


def test_teacher_starts_equal_to_the_student_and_heads_keep_their_own_init():
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config(head_hidden_dim=64, head_bottleneck_dim=64, head_output_dim=256))
    for teacher, student in model.momentum_pairs():
        for (name, t), s in zip(teacher.state_dict().items(), student.state_dict().values()):
            assert torch.equal(t, s), name
        assert not any(p.requires_grad for p in teacher.parameters())
    # DINOHead.reset_parameters (trunc normal 0.02, gain 1), not the base class's normal(0.01) of every Linear
    gain = model.head.last_layer.parametrizations.weight.original0
    assert torch.equal(gain, torch.ones_like(gain)) and not gain.requires_grad  # norm_last_layer
    assert 0.017 < model.head.mlp[2].weight.std().item() < 0.023
    torch.testing.assert_close(model.head.last_layer.weight.norm(dim=1), torch.ones(256))


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_loss_is_dino_loss_of_separately_encoded_crops(backbone):
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config(backbone))
    for module in model.modules():  # BatchNorm statistics of a real batch, for student and teacher (momentum 1)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(**crops(32, seed=1))
    model._staged_teacher_logits.clear()
    perturb_student(model)
    with torch.no_grad():
        model.center.copy_(0.2 * torch.randn_like(model.center))  # a non-zero centre, so that it matters
        model.progress.fill_(0.1)  # tau_t = 0.04 + 0.03 * 0.1 / 0.3 = 0.05
    model.eval()
    views = crops(8)
    with torch.no_grad():
        output = model(**views)
        student = [model.head(features(model, model.backbone, views["pixel_values"][:, v])) for v in range(2)]
        student += [model.head(features(model, model.backbone, views["local_pixel_values"][:, v])) for v in range(2)]
        teacher = [model.teacher_head(features(model, model.teacher_backbone, views["pixel_values"][:, v]))
                   for v in range(2)]
    assert output.student_logits.shape == (8, 4, 48) and output.teacher_logits.shape == (8, 2, 48)
    for v in range(4):
        torch.testing.assert_close(output.student_logits[:, v], student[v], rtol=1e-4, atol=1e-5)
    for v in range(2):
        torch.testing.assert_close(output.teacher_logits[:, v], teacher[v], rtol=1e-4, atol=1e-5)
    expected = dino_loss(student, teacher, model.center, student_temperature=0.1, teacher_temperature=0.05)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the check is sensitive: no centre, another teacher temperature, the teacher replaced by the student
    # (the same network: the EMA teacher matters), or without the local crops give another loss
    others = [
        dino_loss(student, teacher, torch.zeros_like(model.center), 0.1, 0.05),
        dino_loss(student, teacher, model.center, 0.1, 0.04),
        dino_loss(student, student[:2], model.center, 0.1, 0.05),
        dino_loss(student[:2], teacher, model.center, 0.1, 0.05),
    ]
    for other in others:
        assert other.item() != pytest.approx(output.loss.item(), rel=1e-3)
    assert model.last_embeddings.shape == (16, 48) and not model.last_embeddings.requires_grad
    assert not model._staged_teacher_logits  # evaluation forwards do not move the centre


def test_center_is_updated_once_per_on_optimizer_step_from_the_staged_teacher_outputs():
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config(center_momentum=0.9)).train()
    with torch.no_grad():
        model.center.copy_(torch.randn_like(model.center))
    center = model.center.clone()
    first, second = model(**crops(4, seed=0)), model(**crops(4, seed=1))  # two micro-batches of one step
    assert torch.equal(model.center, center)  # not moved by the forward passes
    step_done(model, 0.5)
    teacher = torch.cat([first.teacher_logits.flatten(0, 1), second.teacher_logits.flatten(0, 1)])
    expected = 0.9 * center + 0.1 * teacher.mean(dim=0, keepdim=True)
    torch.testing.assert_close(model.center, expected)
    assert not torch.allclose(expected, 0.9 * center + 0.1 * first.teacher_logits.flatten(0, 1).mean(0))
    step_done(model, 0.6)  # nothing staged since: the centre stays
    torch.testing.assert_close(model.center, expected)


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
def test_gradient_reaches_the_student_and_never_the_teacher(backbone):
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config(backbone)).train()
    perturb_student(model)
    model(**crops(4)).loss.backward()
    for name, module in (("backbone", model.backbone), ("head", model.head)):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(g.abs().sum().item() for g in grads) > 0, name
    for name, parameter in list(model.teacher_backbone.named_parameters()) + list(model.teacher_head.named_parameters()):
        assert parameter.grad is None and not parameter.requires_grad, name


def test_on_optimizer_step_applies_the_ema_with_the_scheduled_momentum():
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config(teacher_momentum=0.996)).train()
    assert model.teacher_momentum(0.0) == pytest.approx(0.996) and model.teacher_momentum(1.0) == pytest.approx(1.0)
    perturb_student(model)
    student, teacher = model.head.mlp[0].weight, model.teacher_head.mlp[0].weight
    # the first update uses the momentum at the first step's position, 0: exactly 0.996
    before = teacher.clone()
    step_done(model, 0.25)
    torch.testing.assert_close(teacher, 0.996 * before + 0.004 * student)
    # the next one uses lambda = 1 - (1 - 0.996) (cos(pi k / K) + 1) / 2 at k / K = 0.25
    perturb_student(model)
    before = teacher.clone()
    step_done(model, 0.5)
    momentum = 1 - 0.004 * (math.cos(math.pi * 0.25) + 1) / 2
    torch.testing.assert_close(teacher, momentum * before + (1 - momentum) * student)
    assert model.progress.item() == 0.5 and int(model.num_optimizer_steps) == 2
    # at the end of training (lambda = 1) the teacher no longer moves
    model.progress.fill_(1.0)
    perturb_student(model)
    before = {name: p.clone() for name, p in model.teacher_backbone.named_parameters()}
    step_done(model, 1.0)
    for name, parameter in model.teacher_backbone.named_parameters():
        assert torch.equal(parameter, before[name]), name


def test_teacher_keeps_its_own_batch_norm_statistics():
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config()).train()
    model(**crops(8))  # the student's statistics mix global and local crops; the teacher's are the global crops'
    teacher_stats = {n: b.clone() for n, b in model.teacher_backbone.named_buffers() if "running_mean" in n}
    student_stats = dict(model.backbone.named_buffers())
    assert any(not torch.equal(b, student_stats[n]) for n, b in teacher_stats.items())
    step_done(model, 0.5)
    for name, buffer in model.teacher_backbone.named_buffers():
        if name in teacher_stats:
            assert torch.equal(buffer, teacher_stats[name]), name


def test_the_teacher_backbone_is_exported():
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config())
    assert model.exported_model() is model.teacher_backbone and model.get_encoder() is model.backbone
    perturb_student(model)
    step_done(model, 0.5)
    exported = dict(model.exported_model().named_parameters())
    assert any(not torch.equal(exported[n], p) for n, p in model.backbone.named_parameters())


def test_last_layer_is_frozen_for_the_first_steps_then_trained():
    torch.manual_seed(0)
    model = DINOForPreTraining(tiny_config(freeze_last_layer_steps=2, norm_last_layer=False)).train()
    last_layer = list(model.head.last_layer.parameters())
    assert len(last_layer) == 2  # weight-norm g and v, both trained without norm_last_layer
    views = crops(8)
    for step in range(3):
        model.zero_grad()
        output = model(**views)
        output.loss.backward()
        with torch.no_grad():  # the frozen path computes the same logits as the head
            torch.testing.assert_close(output.student_logits.transpose(0, 1).flatten(0, 1),
                                       model.head(output.pooled_features.transpose(0, 1).flatten(0, 1)))
        assert sum(p.grad.abs().sum().item() for p in model.head.mlp.parameters()) > 0
        last_grad = sum(p.grad.abs().sum().item() for p in last_layer)
        assert (last_grad == 0) if step < 2 else (last_grad > 0), (step, last_grad)
        step_done(model, (step + 1) / 3)


@pytest.mark.parametrize("num_local", [0, 3])
def test_collator_gives_global_and_local_crops(num_local):
    config = tiny_config("vit-test", num_local_crops=num_local)
    collate = make_collator(config)
    torch.manual_seed(0)
    batch = collate([{"pixel_values": torch.randint(0, 256, (3, GLOBAL, GLOBAL), dtype=torch.uint8)} for _ in range(6)])
    assert batch["pixel_values"].shape == (6, 2, 3, GLOBAL, GLOBAL)
    if num_local:
        assert batch["local_pixel_values"].shape == (6, num_local, 3, LOCAL, LOCAL)
    else:
        assert "local_pixel_values" not in batch
    output = DINOForPreTraining(config)(**batch)
    assert output.student_logits.shape[1] == 2 + num_local and math.isfinite(output.loss.item())


def test_head_batch_norm_sits_after_the_hidden_layers_only():
    from hf_ssl.nn.heads import DINOHead

    head = DINOHead(12, output_dim=20, hidden_dim=8, bottleneck_dim=4, num_layers=3, batch_norm=True)
    kinds = [type(m).__name__ for m in head.mlp]
    assert kinds == ["Linear", "BatchNorm1d", "GELU", "Linear", "BatchNorm1d", "GELU", "Linear"]
    assert [type(m).__name__ for m in DINOHead(12, 20, 8, 4, num_layers=1, batch_norm=True).mlp] == ["Linear"]


def test_batch_norm_in_the_head_keeps_a_resnet_student_from_the_uniform_collapse():
    """The failure the ResNet presets turn head_batch_norm on for: on digits, without it the student's outputs are
    the same for every image within a few dozen steps (embedding_std near 0, loss -> log K)."""
    from hf_ssl.data.datasets import load_image_dataset
    from hf_ssl.data.images import images_to_tensor
    from hf_ssl.training.callbacks import embedding_std

    dataset = load_image_dataset("digits")
    images = images_to_tensor(dataset.splits[dataset.train_split], dataset.image_column, GLOBAL, 3)
    stds = {}
    for batch_norm in (False, True):
        config = tiny_config(head_batch_norm=batch_norm)
        torch.manual_seed(0)
        model = DINOForPreTraining(config).train()
        collate = make_collator(config)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.04)
        generator = torch.Generator().manual_seed(0)
        for step in range(60):
            batch = collate([{"pixel_values": images[i]} for i in torch.randint(len(images), (64,), generator=generator)])
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step_done(model, (step + 1) / 60)
        stds[batch_norm] = embedding_std(model.last_embeddings)
    # measured: 0.079 with BatchNorm against 0.007 without (healthy: 1 / sqrt(48) = 0.14)
    assert stds[True] > 2 * stds[False], stds


def test_pretraining_continues_from_a_dinov2_checkpoint_as_student_and_teacher(tmp_path):
    """`--backbone` a folder transformers' own Dinov2Model saved: student and teacher start from its weights (at
    learning rate 0 the exported teacher is the checkpoint, bit for bit, which it would not be if the teacher had moved
    towards a randomly initialised student), multi-crop's smaller local crops included."""
    from transformers import AutoModel, Dinov2Config, Dinov2Model

    from conftest import run_cli

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             mlp_ratio=2)).save_pretrained(tmp_path / "dinov2")
    out = tmp_path / "continued"
    result = run_cli("pretrain", "--method", "dino", "--preset", "tiny", "--backbone", str(tmp_path / "dinov2"),
                     "--max_steps", "1", "--learning_rate", "0", "--save_strategy", "no", "--eval_protocols", "none",
                     "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    original = AutoModel.from_pretrained(tmp_path / "dinov2").state_dict()
    exported = AutoModel.from_pretrained(out)
    assert type(exported).__name__ == "Dinov2Model"
    assert original.keys() == exported.state_dict().keys()
    for name, value in exported.state_dict().items():
        assert torch.equal(value, original[name]), name
    student = DINOForPreTraining.from_pretrained(out / "ssl").backbone.state_dict()
    for name, value in original.items():
        assert torch.equal(student[name], value), name
