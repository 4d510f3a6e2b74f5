"""What every joint-embedding method inherits from modeling/joint_embedding.py: momentum copies equal to the
online modules at init, frozen, and still frozen after `from_pretrained` (transformers 5.23 re-creates loaded
weights as trainable Parameters); a --backbone checkpoint reaches the momentum copies too."""

import pytest
import torch

from conftest import joint_embedding_methods, primed_eval_model, step_done
from hf_ssl.modeling.method_model import MethodModel

from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.registry import METHODS
from hf_ssl.training.pretrain import PretrainArguments, build_config

JOINT_EMBEDDING_METHODS = joint_embedding_methods()


def tiny_config(name: str, backbone: str | None = None):
    """The method's tiny preset, on another test backbone when given (ViTs at 16 px with 4 px patches)."""
    geometry = dict(image_size=16, patch_size=4) if backbone else {}
    return build_config(METHODS[name], PretrainArguments(method=name, preset="tiny", backbone=backbone, **geometry), {})[0]


def tiny_model(name: str, backbone: str | None = None):
    torch.manual_seed(0)
    return METHODS[name].model_class(tiny_config(name, backbone))


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", JOINT_EMBEDDING_METHODS)
def test_momentum_copies_start_equal_frozen_and_stay_frozen_after_reload(name, tmp_path):
    model = tiny_model(name)
    for target, online in model.momentum_pairs():
        for (t_name, t), (o_name, o) in zip(target.state_dict().items(), online.state_dict().items()):
            assert t_name == o_name and torch.equal(t, o), (name, t_name)
        assert not any(p.requires_grad for p in target.parameters())
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path)
    assert trainable(reloaded) == trainable(model), sorted(trainable(reloaded) ^ trainable(model))
    assert trainable(model), name  # something does train


def test_checkpoint_weights_reach_the_momentum_copies(tmp_path):
    config, _ = backbone_config_from_spec("resnet-test", image_size=16)
    from transformers import AutoModel

    torch.manual_seed(1)
    AutoModel.from_config(config).save_pretrained(tmp_path)
    for name in ("byol", "moco", "dino"):
        model = tiny_model(name)
        model.load_encoder_weights(str(tmp_path))
        saved = AutoModel.from_pretrained(tmp_path).state_dict()
        (target, online), *_ = model.momentum_pairs()
        for key, value in saved.items():
            assert torch.equal(online.state_dict()[key], value) and torch.equal(target.state_dict()[key], value), (name, key)


def fixed_batch(name: str, model, size: int = 16) -> dict[str, torch.Tensor]:
    """One batch from the method's own collator (its views, its crops) on fixed random images."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (size, 3, model.config.image_size, model.config.image_size), dtype=torch.uint8)
    return METHODS[name].make_collator(model.config)([{"pixel_values": image} for image in images])


@pytest.mark.parametrize("name", JOINT_EMBEDDING_METHODS)
def test_a_few_training_steps_lower_the_loss_on_fixed_views(name):
    model = tiny_model(name).train()
    batch = fixed_batch(name, model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for step in range(6):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_done(model, (step + 1) / 6)
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", JOINT_EMBEDDING_METHODS)
def test_gradient_reaches_every_trainable_backbone_weight(name):
    model = tiny_model(name).train()
    model(**fixed_batch(name, model, size=8)).loss.backward()
    missing = [n for n, p in model.backbone.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, missing
    assert model.last_embeddings is not None and not model.last_embeddings.requires_grad  # the collapse monitor's


@pytest.mark.parametrize("name", JOINT_EMBEDDING_METHODS)
def test_forward_refuses_a_batch_without_views(name):
    model = tiny_model(name)
    with pytest.raises(ValueError, match="2 views"):
        model(torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize("name", JOINT_EMBEDDING_METHODS)
def test_save_and_reload_keep_every_weight_and_buffer(name, tmp_path):
    model = tiny_model(name).train()
    batch = fixed_batch(name, model, size=8)
    model(**batch).loss.backward()  # non-initial BatchNorm statistics, staged queue/centre updates
    step_done(model, 0.5)  # moved momentum copies, queue pointers, centres, step counters
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path)
    state, loaded = model.state_dict(), reloaded.state_dict()
    assert state.keys() == loaded.keys()
    for key in state:
        assert torch.equal(state[key], loaded[key]), key


# Methods whose two branches are the same online network, with no momentum encoder, predictor or per-step state.
SYMMETRIC_METHODS = ["barlow_twins", "simclr", "vicreg"]


@pytest.mark.parametrize("backbone", ["resnet-test", "vit-test"])
@pytest.mark.parametrize("name", SYMMETRIC_METHODS)
def test_gradient_reaches_backbone_and_projector(name, backbone):
    model = tiny_model(name, backbone).train()
    assert model.momentum_pairs() == []  # no momentum encoder: nothing is excluded from the gradient
    model(torch.randn(4, 2, 3, 16, 16)).loss.backward()
    for part, module in (("backbone", model.backbone), ("projector", model.projector)):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), part
        assert sum(g.abs().sum().item() for g in grads) > 0, part


@pytest.mark.parametrize("name", SYMMETRIC_METHODS)
def test_no_stop_gradient_on_either_view(name):
    """Both branches are trained: the loss backpropagates into the pixels of each view through its own branch
    (eval mode, so that BatchNorm's batch statistics do not couple the views and hide a detached branch)."""
    model = primed_eval_model(METHODS[name].model_class, tiny_config(name))
    pixels = torch.randn(8, 2, 3, 16, 16, requires_grad=True)
    model(pixels).loss.backward()
    per_view = pixels.grad.abs().flatten(2).sum(-1).sum(0)
    assert per_view[0] > 0 and per_view[1] > 0 and per_view.min() > 1e-2 * per_view.max()


@pytest.mark.parametrize("name", SYMMETRIC_METHODS)
def test_no_per_step_side_effects(name):
    """No momentum encoder, queue or schedule: the per-step hook is the contract's no-op, so an optimizer step moves
    only the recorded position in training, and an eval forward changes no weight or buffer."""
    model = primed_eval_model(METHODS[name].model_class, tiny_config(name))
    assert type(model).on_optimizer_step is MethodModel.on_optimizer_step
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(torch.randn(4, 2, 3, 16, 16))
    step_done(model, 0.5)
    after = model.state_dict()
    position = {"num_optimizer_steps", "progress"}
    assert all(torch.equal(before[k], after[k]) for k in before if k not in position)
    assert int(after["num_optimizer_steps"]) == 1 and after["progress"].item() == 0.5


@pytest.mark.parametrize("name", SYMMETRIC_METHODS)
def test_collator_gives_two_different_normalised_views(name):
    collate = METHODS[name].make_collator(tiny_config(name))
    torch.manual_seed(0)
    examples = [{"pixel_values": torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)} for _ in range(6)]
    batch = collate(examples)
    assert set(batch) == {"pixel_values"} and batch["pixel_values"].shape == (6, 2, 3, 16, 16)
    assert not torch.allclose(batch["pixel_values"][:, 0], batch["pixel_values"][:, 1])
