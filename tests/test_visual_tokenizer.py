"""The visual tokenizer: tokens, straight-through training, pixel and teacher (VQ-KD) targets, config checks,
save/load with codebook state and the teacher inside."""

import shutil

import pytest
import torch
import torch.nn.functional as F
from transformers import ViTImageProcessor, ViTModel

from hf_ssl import VisualVQConfig, VisualVQModel
from conftest import step_done, tiny_backbone_config

TINY = dict(codebook_size=32, code_dim=8, kmeans_init_iterations=2, usage_window=2, decoder_hidden_size=32,
            decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64)


def tiny_config(**kwargs) -> VisualVQConfig:
    return VisualVQConfig(backbone_config=tiny_backbone_config("vit-test"), **{**TINY, **kwargs})


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    """A native ViT encoder folder as `hf-ssl pretrain` writes at OUT's root: 8 px patches (a 2x2 grid, coarser
    than the tokenizer's 4x4) and its own pixel normalisation."""
    folder = tmp_path_factory.mktemp("teacher")
    config = tiny_backbone_config("vit-test")
    config.patch_size, config.hidden_size, config.intermediate_size = 8, 24, 48
    torch.manual_seed(7)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]).save_pretrained(folder)
    return folder


def test_tokenize_gives_one_id_per_patch_consistent_with_forward():
    torch.manual_seed(0)
    model = VisualVQModel(tiny_config()).eval()
    images = torch.randn(5, 3, 16, 16)
    ids = model.tokenize(images)
    assert ids.shape == (5, 16) and ids.dtype == torch.long and 0 <= ids.min() and ids.max() < 32
    assert torch.equal(ids, model(images).token_ids)
    torch.testing.assert_close(ids, model.quantizer.lookup(model.encode(images)))


def test_straight_through_gradient_reaches_the_encoder_and_the_ema_codebook_gets_none():
    torch.manual_seed(0)
    model = VisualVQModel(tiny_config(commitment_weight=0.0))
    output = model(torch.randn(4, 3, 16, 16))
    output.reconstruction_loss.backward()   # the decoder's loss alone: it reaches the encoder only through the VQ
    for name, parameter in model.backbone.layers[0].named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert model.encode_projection[0].weight.grad.abs().sum() > 0
    assert not model.quantizer.codebook.requires_grad and model.quantizer.codebook.grad is None


def test_a_few_optimizer_steps_lower_the_loss_and_log_codebook_usage():
    torch.manual_seed(0)
    model = VisualVQModel(tiny_config())
    images = torch.randn(16, 3, 16, 16)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(12):
        loss = model(images).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step_done(model, 0.0)
        losses.append(loss.item())
    assert losses[-1] < losses[1]      # step 0 ran on the random codebook, replaced by k-means after it
    terms = model.last_loss_terms
    assert {"reconstruction_loss", "quantizer_loss", "codebook_perplexity", "codebook_live_share"} <= set(terms)
    assert 1.0 <= terms["codebook_perplexity"] <= 32 and 0.0 < terms["codebook_live_share"] <= 1.0


def test_pixel_target_is_the_mean_squared_error_of_each_patch():
    torch.manual_seed(0)
    model = VisualVQModel(tiny_config()).eval()
    images = torch.randn(2, 3, 16, 16)
    output = model(images)
    target = images.unfold(2, 4, 4).unfold(3, 4, 4)                      # (B, C, 4, 4, p, q)
    target = target.permute(0, 2, 3, 4, 5, 1).reshape(2, 16, 48)         # patch (row, col), pixels (p, q, c)
    expected = (output.reconstruction - target).pow(2).mean()
    assert output.reconstruction_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert output.loss.item() == pytest.approx((output.reconstruction_loss + output.quantizer_loss).item(), rel=1e-6)


def test_teacher_target_distils_frozen_teacher_features(teacher_folder, tmp_path):
    config = tiny_config(target="teacher", teacher=str(teacher_folder))
    assert config.teacher_config.model_type == "vit" and config.teacher_config.patch_size == 8
    assert config.teacher_image_mean == [0.5, 0.5, 0.5] and config.teacher_image_std == [0.25, 0.25, 0.25]
    torch.manual_seed(0)
    model = VisualVQModel(config)
    model.load_pretrained_parts()
    reference = ViTModel.from_pretrained(teacher_folder, add_pooling_layer=False).eval()
    for name, value in reference.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[name], value), name
    model.train()
    assert not model.teacher.training and not any(p.requires_grad for p in model.teacher.parameters())

    images = torch.randn(3, 3, 16, 16)
    output = model(images)
    # independently: undo the tokenizer's normalisation, apply the teacher's, take its 2x2 patch tokens, upsample
    pixels = images * torch.tensor(config.image_std).view(1, 3, 1, 1) + torch.tensor(config.image_mean).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = reference(pixel_values=(pixels - 0.5) / 0.25).last_hidden_state[:, 1:]      # (3, 4, 24)
    grid = F.interpolate(tokens.transpose(1, 2).reshape(3, 24, 2, 2), size=(4, 4), mode="bilinear",
                         align_corners=False).flatten(2).transpose(1, 2)
    expected = (1 - F.cosine_similarity(output.reconstruction, grid, dim=-1)).mean()
    assert output.reconstruction.shape == (3, 16, 24)
    assert output.reconstruction_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    output.loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())

    # self-contained: the saved tokenizer holds the teacher, and loads without the teacher's folder
    model.save_pretrained(tmp_path / "tokenizer")
    moved = tmp_path / "moved-teacher"
    shutil.move(str(teacher_folder), moved)
    try:
        loaded = VisualVQModel.from_pretrained(tmp_path / "tokenizer")
    finally:
        shutil.move(str(moved), teacher_folder)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert any(name.startswith("teacher.") for name in loaded.state_dict())


def test_save_and_from_pretrained_keep_config_weights_and_codebook_state(tmp_path):
    config = tiny_config(codebook_update="loss", commitment_weight=0.5, restart_dead_codes=False, norm_pix_target=True,
                         crop_min_scale=0.3)
    torch.manual_seed(0)
    model = VisualVQModel(config)
    for _ in range(3):   # move the codebook state away from its initial values
        model(torch.randn(8, 3, 16, 16)).loss.backward()
        step_done(model, 0.5)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    loaded = VisualVQModel.from_pretrained(tmp_path)
    for name in ("codebook_size", "code_dim", "codebook_update", "commitment_weight", "restart_dead_codes",
                 "norm_pix_target", "crop_min_scale", "image_mean", "target", "usage_window"):
        assert getattr(loaded.config, name) == getattr(config, name), name
    assert type(loaded.config.backbone_config).__name__ == "ViTConfig" and loaded.config.teacher_config is None
    state = model.state_dict()
    assert int(state["quantizer.num_updates"]) == 3 and not bool(state["quantizer.needs_init"])
    for name, value in state.items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert loaded.quantizer.codebook.requires_grad     # the loss-based codebook is a parameter again
    images = torch.randn(2, 3, 16, 16)
    assert torch.equal(loaded.eval().tokenize(images), model.eval().tokenize(images))


@pytest.mark.parametrize("kwargs, message", [
    (dict(codebook_size=1), "codebook_size"),
    (dict(code_dim=0), "code_dim"),
    (dict(codebook_update="sgd"), "codebook_update"),
    (dict(codebook_decay=1.0), "codebook_decay"),
    (dict(commitment_weight=-1.0), "commitment_weight"),
    (dict(kmeans_init_iterations=-1), "kmeans_init_iterations"),
    (dict(usage_window=0), "usage_window"),
    (dict(target="depth"), "target must be one of"),
    (dict(target="teacher"), "needs a teacher"),
    (dict(teacher="/no/such/teacher", target="teacher"), "cannot read the teacher"),
    (dict(decoder_num_attention_heads=3), "decoder_num_attention_heads"),
    (dict(decoder_num_hidden_layers=-1), "decoder_num_hidden_layers"),
    (dict(crop_min_scale=0.0), "crop_min_scale"),
    (dict(initializer_range=-0.1), "initializer_range"),
])
def test_invalid_values_are_refused_with_the_value_named(kwargs, message):
    with pytest.raises(Exception, match=message):
        tiny_config(**kwargs)


def test_a_convolutional_encoder_is_refused():
    with pytest.raises(Exception, match="needs a ViT encoder"):
        VisualVQConfig(backbone_config=tiny_backbone_config("resnet-test"))
