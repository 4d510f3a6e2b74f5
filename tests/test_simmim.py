"""SimMIM with ViT and Swin backbones: L1 on masked pixels only, the mask token, the one-layer head, config checks,
save/load, and the CLI exports loading where hf_ssl is not installed."""

import json

import pytest
import torch
from transformers import SwinConfig

from hf_ssl import SimMIMConfig, SimMIMForPreTraining
from hf_ssl.losses.masked_reconstruction import masked_l1_loss
from conftest import run_cli, run_python, tiny_backbone_config


def tiny_swin_config(**kwargs) -> SwinConfig:
    """Swin at 16 px: 4 px patches (a 4x4 grid), two stages (output stride 8), 2x2 windows."""
    defaults = dict(image_size=16, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=2)
    return SwinConfig(**{**defaults, **kwargs})


BACKBONES = {"vit": lambda: tiny_backbone_config("vit-test"), "swin": tiny_swin_config}


def tiny_model(backbone: str = "vit", seed: int = 0, **kwargs) -> SimMIMForPreTraining:
    torch.manual_seed(seed)
    return SimMIMForPreTraining(SimMIMConfig(backbone_config=BACKBONES[backbone](), mask_patch_size=8, **kwargs))


def test_masked_l1_loss_counts_masked_patches_only():
    torch.manual_seed(0)
    prediction, target = torch.randn(3, 5, 12), torch.randn(3, 5, 12)
    mask = torch.tensor([[1, 0, 0, 1, 0], [0, 0, 0, 0, 1], [1, 1, 0, 0, 0]]).float()
    loss = masked_l1_loss(prediction, target, mask)
    expected = sum(abs(prediction[b, n, i] - target[b, n, i]).item()
                   for b in range(3) for n in range(5) for i in range(12) if mask[b, n]) / (5 * 12)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    changed = prediction.clone()
    changed[mask == 0] += 10.0                     # an unmasked patch's error does not count
    assert masked_l1_loss(changed, target, mask).item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("backbone", ["vit", "swin"])
def test_loss_is_l1_over_the_masked_pixels_of_the_reconstruction(backbone):
    model = tiny_model(backbone).eval()
    images = torch.randn(2, 3, 16, 16)
    output = model(images)
    assert output.reconstruction.shape == images.shape
    pixel_mask = output.bool_masked_pos.view(2, 4, 4).repeat_interleave(4, 1).repeat_interleave(4, 2)
    errors = (output.reconstruction - images).abs().double()
    expected = sum(errors[b, c, y, x].item() for b in range(2) for c in range(3) for y in range(16) for x in range(16)
                   if pixel_mask[b, y, x]) / (pixel_mask.sum().item() * 3)
    assert output.loss.item() == pytest.approx(expected, rel=1e-5)
    assert output.bool_masked_pos.sum(1).tolist() == [3 * 4, 3 * 4]     # ceil(0.6 x 4) mask patches of 2x2 patches


@pytest.mark.parametrize("backbone", ["vit", "swin"])
def test_encoder_sees_the_mask_token_not_the_masked_pixels(backbone):
    model = tiny_model(backbone).eval()
    images = torch.randn(2, 3, 16, 16)
    mask = model.random_mask(2, images.device)
    pixel_mask = mask.view(2, 4, 4).repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None].expand_as(images)
    corrupted = torch.where(pixel_mask, torch.randn_like(images) * 10, images)
    reconstruction = model.reconstruct(images, mask)
    torch.testing.assert_close(reconstruction, model.reconstruct(corrupted, mask))
    with torch.no_grad():
        model.mask_token.add_(1.0)
    assert not torch.allclose(model.reconstruct(images, mask), reconstruction)


@pytest.mark.parametrize("backbone", ["vit", "swin"])
def test_gradients_and_a_native_backbone_without_mask_token(backbone):
    model = tiny_model(backbone).train()
    model(torch.randn(4, 3, 16, 16)).loss.backward()
    assert model.mask_token.grad.abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    assert not any("mask_token" in name for name in model.backbone.state_dict())
    assert model.head.out_channels == model.config.encoder_stride**2 * 3   # one linear layer to the pixels
    assert model.config.encoder_stride == {"vit": 4, "swin": 8}[backbone]


@pytest.mark.parametrize("backbone", ["vit", "swin"])
def test_same_loss_reconstruction_and_gradients_as_transformers_masked_image_modeling(backbone):
    """transformers' ViTForMaskedImageModeling / SwinForMaskedImageModeling are ports of the SimMIM reference code
    (mask token in the embeddings, 1x1 convolution + pixel shuffle, L1 over masked pixels): with the same weights
    and mask they are an independent implementation to agree with."""
    from transformers import SwinForMaskedImageModeling, ViTForMaskedImageModeling

    ours = tiny_model(backbone).eval()
    config = ours.config.backbone_config.__class__(**ours.config.backbone_config.to_dict())
    config.encoder_stride = ours.config.encoder_stride
    reference_class = {"vit": ViTForMaskedImageModeling, "swin": SwinForMaskedImageModeling}[backbone]
    reference = reference_class(config).eval()
    body = getattr(reference, backbone)
    body.load_state_dict({**ours.backbone.state_dict(), "embeddings.mask_token": ours.mask_token.detach()})
    reference.decoder[0].load_state_dict(ours.head.state_dict())
    images = torch.randn(3, 3, 16, 16)
    mask = ours.random_mask(3, images.device)
    mine, theirs = ours(images, bool_masked_pos=mask), reference(pixel_values=images, bool_masked_pos=mask)
    torch.testing.assert_close(mine.reconstruction, theirs.reconstruction, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine.loss, theirs.loss, atol=1e-5, rtol=1e-4)
    mine.loss.backward()
    theirs.loss.backward()
    torch.testing.assert_close(ours.mask_token.grad, body.embeddings.mask_token.grad, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(ours.head.weight.grad, reference.decoder[0].weight.grad, atol=1e-6, rtol=1e-4)


def test_a_few_optimizer_steps_lower_the_loss():
    model = tiny_model("vit").train()
    # flat colours plus a little noise: the masked pixels are predictable from the visible ones
    images = torch.randn(16, 3, 1, 1) + 0.1 * torch.randn(16, 3, 16, 16)
    mask = model.random_mask(16, images.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss = model(images, bool_masked_pos=mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("backbone", ["vit", "swin"])
def test_save_and_from_pretrained_round_trip(backbone, tmp_path):
    model = tiny_model(backbone, mask_ratio=0.5, crop_min_scale=0.5)
    model.save_pretrained(tmp_path)
    loaded = SimMIMForPreTraining.from_pretrained(tmp_path)
    assert type(loaded.config.backbone_config) is type(model.config.backbone_config)
    assert (loaded.config.mask_ratio, loaded.config.crop_min_scale, loaded.config.mask_patch_size) == (0.5, 0.5, 8)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    images = torch.randn(2, 3, 16, 16)
    mask = model.random_mask(2, images.device)
    torch.testing.assert_close(loaded.eval()(images, mask).loss, model.eval()(images, mask).loss)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mask_patch_size=6), "mask_patch_size must be a multiple of the patch size 4"),
    (dict(mask_patch_size=12), "that divides the image size 16"),
    (dict(mask_ratio=0.0), "mask_ratio"),
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(crop_min_scale=0.0), "crop_min_scale"),
    (dict(initializer_range=2.0), "initializer_range"),
])
def test_invalid_values_are_refused_with_the_value_named(kwargs, message):
    with pytest.raises(Exception, match=message):
        SimMIMConfig(backbone_config=tiny_backbone_config("vit-test"), **{"mask_patch_size": 8, **kwargs})


def test_backbones_without_mask_token_support_are_refused():
    with pytest.raises(Exception, match="takes bool_masked_pos"):
        SimMIMConfig(backbone_config=tiny_backbone_config("resnet-test"), mask_patch_size=8)
    with pytest.raises(Exception, match="output stride"):   # 3 stages: stride 16 does not divide 24 px
        SimMIMConfig(backbone_config=tiny_swin_config(image_size=24, depths=[1, 1, 1], num_heads=[1, 1, 1]),
                     mask_patch_size=8)


def test_cli_vit_and_swin_exports_load_without_hf_ssl(tmp_path):
    swin_json = tmp_path / "swin.json"
    swin_json.write_text(json.dumps(tiny_swin_config().to_dict()))
    outs = {"vit": tmp_path / "simmim-vit", "swin": tmp_path / "simmim-swin"}
    for name, extra in (("vit", []), ("swin", ["--backbone", str(swin_json)])):
        result = run_cli("pretrain", "--method", "simmim", "--preset", "tiny", *extra, "--max_steps", "2",
                         "--eval_protocols", "none", "--output_dir", str(outs[name]))
        assert result.returncode == 0, result.stderr[-5000:]
    run_python(f"""
        import torch
        from transformers import AutoModel, AutoModelForImageClassification
        for out, architecture, prefix in (({str(outs["vit"])!r}, "ViTModel", "vit"),
                                          ({str(outs["swin"])!r}, "SwinModel", "swin")):
            encoder = AutoModel.from_pretrained(out)
            assert type(encoder).__name__ == architecture, type(encoder)
            classifier, info = AutoModelForImageClassification.from_pretrained(out, num_labels=10, output_loading_info=True)
            assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"], info
            assert not info["unexpected_keys"] and not info["mismatched_keys"], info
            body = getattr(classifier, prefix).state_dict()
            for name, value in encoder.state_dict().items():
                if not name.startswith("pooler."):
                    assert torch.equal(body[name], value), name
            assert classifier(pixel_values=torch.randn(2, 3, 16, 16)).logits.shape == (2, 10)
    """)
