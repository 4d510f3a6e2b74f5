"""MAE: the loss against the paper's formula, masking, encoder visibility, optimisation, config round trip."""

import math

import pytest
import torch

from conftest import run_cli
from hf_ssl import MAEConfig, MAEForPreTraining
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.masking import random_masking
from hf_ssl.nn.patches import sincos_position_embedding


def tiny_config(**kwargs) -> MAEConfig:
    backbone, _ = backbone_config_from_spec("vit-test", image_size=16, patch_size=4)
    defaults = dict(decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                    decoder_intermediate_size=64)
    return MAEConfig(backbone_config=backbone, **{**defaults, **kwargs})


def reference_mae_loss(images: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor, patch: int,
                       norm_pix: bool) -> float:
    """The paper's loss written out: for every masked patch, the mean squared error between its predicted
    and true pixels (optionally normalised by the patch's own mean and std), averaged over masked patches."""
    images, prediction = images.double(), prediction.double()
    batch, channels, height, width = images.shape
    grid_w = width // patch
    total, count = 0.0, 0
    for b in range(batch):
        for n in range(mask.shape[1]):
            if mask[b, n] != 1:
                continue
            row, col = divmod(n, grid_w)
            pixels = []
            for p in range(patch):          # pixel order inside a patch: row p, column q, channel c
                for q in range(patch):
                    for c in range(channels):
                        pixels.append(images[b, c, row * patch + p, col * patch + q].item())
            if norm_pix:
                mean = sum(pixels) / len(pixels)
                var = sum((x - mean) ** 2 for x in pixels) / (len(pixels) - 1)  # unbiased, as the reference code
                pixels = [(x - mean) / math.sqrt(var + 1e-6) for x in pixels]
            error = sum((prediction[b, n, i].item() - x) ** 2 for i, x in enumerate(pixels)) / len(pixels)
            total += error
            count += 1
    return total / count


@pytest.mark.parametrize("norm_pix", [True, False])
def test_loss_matches_paper_formula(norm_pix):
    torch.manual_seed(0)
    model = MAEForPreTraining(tiny_config(norm_pix_loss=norm_pix)).eval()
    images = torch.randn(3, 3, 16, 16)
    output = model(images)
    expected = reference_mae_loss(images, output.logits.detach(), output.mask, 4, norm_pix)
    assert output.loss.item() == pytest.approx(expected, rel=1e-5)


def test_encoder_sees_only_visible_patches():
    torch.manual_seed(0)
    model = MAEForPreTraining(tiny_config()).eval()
    images = torch.randn(2, 3, 16, 16)
    torch.manual_seed(1)
    hidden, mask, _ = model.encode_visible(images)
    corrupted = images.clone()
    for b in range(2):  # overwrite every masked patch with noise
        for n in torch.nonzero(mask[b]).flatten().tolist():
            row, col = divmod(n, 4)
            corrupted[b, :, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4] = torch.randn(3, 4, 4) * 10
    torch.manual_seed(1)  # same mask
    hidden_corrupted, mask_again, _ = model.encode_visible(corrupted)
    assert torch.equal(mask, mask_again)
    torch.testing.assert_close(hidden, hidden_corrupted)
    assert hidden.shape[1] == 1 + 4  # [CLS] + 25% of 16 patches
    # ... while a change to a visible patch does change the encoding
    visible = torch.nonzero(mask[0] == 0).flatten()[0].item()
    row, col = divmod(visible, 4)
    corrupted[0, :, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4] += 1.0
    torch.manual_seed(1)
    assert not torch.allclose(model.encode_visible(corrupted)[0][0], hidden[0])


def test_random_masking_statistics():
    generator = torch.Generator().manual_seed(0)
    batch, patches, ratio = 4000, 49, 0.75
    ids_keep, mask, ids_restore = random_masking(batch, patches, ratio, generator=generator)
    num_keep = int(patches * (1 - ratio))
    assert ids_keep.shape == (batch, num_keep)
    assert torch.all(mask.sum(dim=1) == patches - num_keep)           # exact count in every sample
    kept = torch.zeros(batch, patches).scatter_(1, ids_keep, 1.0)
    assert torch.equal(kept, 1 - mask)                                # ids_keep are the unmasked patches
    frequency = mask.mean(dim=0)                                      # every position equally likely
    expected = (patches - num_keep) / patches
    assert torch.all((frequency - expected).abs() < 4 * math.sqrt(expected * (1 - expected) / batch))
    shuffle = torch.argsort(ids_restore, dim=1)
    assert torch.equal(torch.gather(shuffle, 1, ids_restore), torch.arange(patches).expand(batch, -1))


def test_random_masking_traces_under_torch_compile_with_a_batch_of_another_size():
    """`--torch_compile true` recompiles for an epoch's short last batch with a symbolic batch size; drawing the noise
    must not fail there (it did, at the last batch of MAE small's first epoch)."""
    def masked_counts(images: torch.Tensor) -> torch.Tensor:
        return random_masking(images.shape[0], 16, 0.75, device=images.device)[1].sum(dim=1)

    compiled = torch.compile(masked_counts, backend="eager", dynamic=True)  # tracing is what failed: no inductor
    for batch in (8, 3):
        assert torch.equal(compiled(torch.zeros(batch, 3)), torch.full((batch,), 12.0))


def test_gradient_step_lowers_loss_on_fixed_batch():
    torch.manual_seed(0)
    model = MAEForPreTraining(tiny_config())
    images = torch.randn(8, 3, 16, 16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_with_fixed_mask():
        torch.manual_seed(123)
        return model(images).loss

    before = loss_with_fixed_mask()
    before.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.layers[0].parameters())  # reaches the encoder
    assert model.backbone.embeddings.position_embeddings.grad is None                     # fixed sin-cos
    optimizer.step()
    with torch.no_grad():
        after = loss_with_fixed_mask()
    assert after.item() < before.item()


def test_sincos_position_embedding_formula():
    dim, grid = 16, 3
    table = sincos_position_embedding(dim, grid)[0]
    assert table.shape == (1 + grid * grid, dim)
    assert torch.all(table[0] == 0)
    quarter = dim // 4
    for index in range(grid * grid):
        row, col = divmod(index, grid)
        for i in range(quarter):
            omega = 1 / 10000 ** (i / quarter)
            assert table[1 + index, i].item() == pytest.approx(math.sin(col * omega), abs=1e-6)
            assert table[1 + index, quarter + i].item() == pytest.approx(math.cos(col * omega), abs=1e-6)
            assert table[1 + index, 2 * quarter + i].item() == pytest.approx(math.sin(row * omega), abs=1e-6)
            assert table[1 + index, 3 * quarter + i].item() == pytest.approx(math.cos(row * omega), abs=1e-6)


def test_config_and_model_round_trip(tmp_path):
    config = tiny_config(mask_ratio=0.6, norm_pix_loss=False, crop_min_scale=0.5)
    torch.manual_seed(0)
    model = MAEForPreTraining(config)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and not list(tmp_path.glob("*.bin"))
    loaded = MAEForPreTraining.from_pretrained(tmp_path)
    assert type(loaded.config.backbone_config).__name__ == "ViTConfig"
    for name in ("mask_ratio", "norm_pix_loss", "crop_min_scale", "decoder_hidden_size", "image_mean"):
        assert getattr(loaded.config, name) == getattr(config, name)
    ignore = {"dtype"}  # from_pretrained records the dtype it loaded in
    original = {k: v for k, v in config.backbone_config.to_dict().items() if k not in ignore}
    assert {k: v for k, v in loaded.config.backbone_config.to_dict().items() if k not in ignore} == original
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    images = torch.randn(2, 3, 16, 16)
    torch.manual_seed(5)
    expected = model(images).loss
    torch.manual_seed(5)
    assert loaded(images).loss.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(mask_ratio=0.0), "mask_ratio"),
    (dict(mask_ratio=0.99), "no visible patch"),
    (dict(crop_min_scale=0.0), "crop_min_scale"),
    (dict(decoder_num_attention_heads=3), "divisible"),
])
def test_invalid_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(Exception, match=message):
        tiny_config(**kwargs)


def test_mae_refuses_a_convolutional_backbone():
    backbone, _ = backbone_config_from_spec("resnet-test")
    with pytest.raises(Exception, match="ViT backbone"):
        MAEConfig(backbone_config=backbone)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_same_loss_and_gradients_as_transformers_vit_mae(norm_pix):
    """transformers' ViTMAEForPreTraining (a port of the reference code) is an independent implementation:
    with the same weights and the same masking noise, loss, reconstruction and gradients must agree."""
    from hf_ssl.modeling.mae.convert_mae import to_vit_mae

    torch.manual_seed(0)
    ours = MAEForPreTraining(tiny_config(norm_pix_loss=norm_pix)).eval()
    reference = to_vit_mae(ours).eval()
    images, noise = torch.randn(4, 3, 16, 16), torch.rand(4, 16)
    mine, theirs = ours(images, noise=noise), reference(images, noise=noise)
    torch.testing.assert_close(mine.mask, theirs.mask)
    torch.testing.assert_close(mine.logits, theirs.logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine.loss, theirs.loss, atol=1e-6, rtol=1e-5)
    mine.loss.backward()
    theirs.loss.backward()
    torch.testing.assert_close(ours.backbone.layers[0].mlp.fc1.weight.grad,
                               reference.vit.layers[0].mlp.fc1.weight.grad, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(ours.mask_token.grad, reference.decoder.mask_token.grad, atol=1e-6, rtol=1e-4)


def test_encoder_initialised_as_in_the_reference_code():
    """Xavier-uniform linears and patch projection (not ViT's N(0, 0.02)): bound sqrt(6 / (fan_in + fan_out))."""
    torch.manual_seed(0)
    model = MAEForPreTraining(tiny_config())
    fc1 = model.backbone.layers[0].mlp.fc1.weight                   # (64, 32)
    projection = model.backbone.embeddings.patch_embeddings.projection.weight  # (32, 3, 4, 4)
    for weight, fan_in, fan_out in ((fc1, 32, 64), (projection, 48, 32)):
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert weight.abs().max().item() <= bound
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)  # std of U(-b, b)


def test_pretraining_continues_from_a_transformers_vit_mae_checkpoint(tmp_path):
    """`--backbone` a folder that transformers' own ViTMAEForPreTraining saved (another decoder geometry than the
    preset's): the run adopts its encoder and decoder, and at learning rate 0 its export converts back to exactly the
    checkpoint's weights; the same images and masking noise give the checkpoint's loss."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    from hf_ssl.modeling.mae.convert_mae import to_vit_mae

    torch.manual_seed(3)
    original = ViTMAEForPreTraining(ViTMAEConfig(
        image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        decoder_hidden_size=24, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=48)).eval()
    original.save_pretrained(tmp_path / "vit-mae")
    out = tmp_path / "continued"
    result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--backbone", str(tmp_path / "vit-mae"),
                     "--max_steps", "1", "--learning_rate", "0", "--save_strategy", "no", "--eval_protocols", "none",
                     "--norm_pix_loss", "false", "--output_dir", str(out))  # the checkpoint's target, for the loss
    assert result.returncode == 0, result.stderr[-3000:]
    continued = MAEForPreTraining.from_pretrained(out / "ssl").eval()
    assert continued.config.decoder_hidden_size == 24 and continued.config.backbone_config.model_type == "vit"
    back = to_vit_mae(continued).state_dict()
    for name, value in original.state_dict().items():
        assert torch.equal(back[name], value), name
    images, noise = torch.randn(2, 3, 16, 16), torch.rand(2, 16)
    torch.testing.assert_close(continued(images, noise=noise).loss, original(images, noise=noise).loss)
    # the exported encoder, as users load it, is the checkpoint's ViT
    from transformers import AutoModel

    exported = AutoModel.from_pretrained(out).state_dict()
    shared = [name for name in original.vit.state_dict() if name in exported]
    assert len(shared) > 10
    for name in shared:
        assert torch.equal(exported[name], original.vit.state_dict()[name]), name
