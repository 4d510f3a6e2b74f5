"""BEiT: the loss on masked positions only, the mask token, the frozen tokenizer's targets, config checks, save/load,
and the CLI chain visual_tokenizer -> beit with exports loading where hf_ssl is not installed."""

import math

import pytest
import torch

from hf_ssl import BEiTConfig, BEiTForPreTraining, VisualVQConfig, VisualVQModel
from conftest import assert_no_local_paths, run_cli, run_python, tiny_backbone_config
from test_visual_tokenizer import TINY


def tokenizer_config(**kwargs) -> VisualVQConfig:
    return VisualVQConfig(backbone_config=tiny_backbone_config("vit-test"), **{**TINY, **kwargs})


def tiny_config(**kwargs) -> BEiTConfig:
    defaults = dict(tokenizer_config=tokenizer_config(), mask_min_block_patches=2)
    return BEiTConfig(backbone_config=tiny_backbone_config("vit-test"), **{**defaults, **kwargs})


def model_and_batch(seed: int = 0, batch: int = 4):
    torch.manual_seed(seed)
    model = BEiTForPreTraining(tiny_config()).eval()
    images = torch.randn(batch, 3, 16, 16)
    mask = model.random_mask(batch, images.device)
    return model, images, mask


def test_loss_is_the_cross_entropy_of_the_masked_positions_only():
    model, images, mask = model_and_batch()
    targets = torch.randint(0, 32, (4, 16))
    output = model(images, bool_masked_pos=mask, target_ids=targets)
    logits = output.logits.double()
    terms = [-torch.log_softmax(logits[b, n], dim=-1)[targets[b, n]].item()
             for b in range(4) for n in range(16) if mask[b, n]]
    assert output.loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)

    changed = targets.clone()
    changed[~mask] = (changed[~mask] + 1) % 32            # every unmasked target changes: no effect
    assert model(images, bool_masked_pos=mask, target_ids=changed).loss.item() == pytest.approx(output.loss.item(), rel=1e-6)
    changed = targets.clone()
    changed[mask] = (changed[mask] + 1) % 32              # the masked ones: the loss changes
    assert model(images, bool_masked_pos=mask, target_ids=changed).loss.item() != pytest.approx(output.loss.item(), rel=1e-3)


def test_targets_are_the_tokenizers_ids_of_the_unmasked_image():
    model, images, mask = model_and_batch()
    output = model(images, bool_masked_pos=mask)
    assert torch.equal(output.target_ids, model.tokenizer.tokenize(images))
    assert output.bool_masked_pos is mask and output.logits.shape == (4, 16, 32)


def test_encoder_sees_the_mask_token_not_the_masked_patches():
    model, images, mask = model_and_batch()
    corrupted = images.clone()
    for b in range(4):
        for n in torch.nonzero(mask[b]).flatten().tolist():
            row, col = divmod(n, 4)
            corrupted[b, :, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4] = torch.randn(3, 4, 4) * 10
    targets = torch.zeros(4, 16, dtype=torch.long)
    logits = model(images, mask, targets).logits
    torch.testing.assert_close(logits, model(corrupted, mask, targets).logits)
    with torch.no_grad():   # ... the mask token is what fills them: moving it changes the predictions
        model.mask_token.add_(1.0)
    assert not torch.allclose(model(images, mask, targets).logits, logits)


def test_gradients_train_encoder_head_and_mask_token_never_the_tokenizer():
    model, images, mask = model_and_batch()
    model.train()
    model(images, bool_masked_pos=mask).loss.backward()
    assert model.mask_token.grad.abs().sum() > 0 and model.head.weight.grad.abs().sum() > 0
    assert model.backbone.layers[0].mlp.fc1.weight.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in model.tokenizer.parameters())
    assert not model.tokenizer.training
    # the exported backbone is the native ViT: no mask token, no pooler
    assert sorted(model.backbone.state_dict()) == sorted(
        type(model.backbone)(model.backbone.config, add_pooling_layer=False).state_dict())


def test_a_few_optimizer_steps_lower_the_loss():
    model, images, mask = model_and_batch(batch=16)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(8):
        loss = model(images, bool_masked_pos=mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1 and losses[0] == pytest.approx(math.log(32), rel=0.2)


def test_default_masks_are_blockwise_at_the_ratio():
    torch.manual_seed(0)
    model = BEiTForPreTraining(tiny_config())
    mask = model(torch.randn(64, 3, 16, 16), return_loss=False).bool_masked_pos
    assert mask.shape == (64, 16) and mask.dtype == torch.bool
    assert mask.sum(1).max() <= int(0.4 * 16) and mask.sum(1).float().mean() > 0.3 * 16


def test_load_pretrained_parts_reads_the_tokenizer_of_a_pretrain_output_folder(tmp_path):
    torch.manual_seed(3)
    tokenizer = VisualVQModel(tokenizer_config())
    tokenizer.quantizer.num_updates.fill_(5)          # state from its training must come along
    tokenizer.save_pretrained(tmp_path / "ssl")       # OUT/ssl, as `hf-ssl pretrain` writes it
    config = BEiTConfig(backbone_config=tiny_backbone_config("vit-test"), tokenizer=str(tmp_path),
                        mask_min_block_patches=2)
    assert config.tokenizer_config.codebook_size == 32
    torch.manual_seed(0)
    model = BEiTForPreTraining(config)
    model.load_pretrained_parts()
    source = tokenizer.state_dict()
    for name, value in model.tokenizer.state_dict().items():
        assert torch.equal(value, source[name]), name
    assert not any(name.startswith("decoder.") for name in model.tokenizer.state_dict())   # only what tokenizes
    assert not any(p.requires_grad for p in model.tokenizer.parameters())


def test_save_and_from_pretrained_keep_everything_including_the_tokenizer(tmp_path):
    torch.manual_seed(0)
    model = BEiTForPreTraining(tiny_config(mask_ratio=0.5, mask_min_aspect=0.5))
    model.tokenizer.quantizer.codebook.mul_(-1)       # differs from any fresh initialisation
    model.save_pretrained(tmp_path)
    loaded = BEiTForPreTraining.from_pretrained(tmp_path)
    assert loaded.config.mask_ratio == 0.5 and loaded.config.mask_min_aspect == 0.5
    assert isinstance(loaded.config.tokenizer_config, VisualVQConfig)
    ignore = {"dtype"}  # from_pretrained records the dtype it loaded in
    saved, original = ({k: v for k, v in config.tokenizer_config.to_dict().items() if k not in ignore}
                       for config in (loaded.config, model.config))
    assert saved == original
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    images = torch.randn(2, 3, 16, 16)
    mask = model.random_mask(2, images.device)
    torch.testing.assert_close(loaded.eval()(images, mask).loss, model.eval()(images, mask).loss)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tokenizer_config=None), "--tokenizer OUT"),
    (dict(tokenizer="/no/such/tokenizer", tokenizer_config=None), "cannot read the visual tokenizer"),
    (dict(mask_ratio=0.0), "mask_ratio"),
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(mask_min_block_patches=0), "mask_min_block_patches"),
    (dict(mask_min_block_patches=7), r"mask_min_block_patches must be in \[1, 6\]"),
    (dict(mask_min_aspect=1.5), "mask_min_aspect"),
    (dict(crop_min_scale=1.5), "crop_min_scale"),
    (dict(image_mean=[0.5, 0.5, 0.5]), "differ from the visual tokenizer"),
])
def test_invalid_values_are_refused_with_the_value_named(kwargs, message):
    with pytest.raises(Exception, match=message):
        tiny_config(**kwargs)


def test_tokenizer_with_another_patch_grid_is_refused():
    with pytest.raises(Exception, match="patch grids must match"):
        BEiTConfig(backbone_config=tiny_backbone_config("vit-test", image_size=32), tokenizer_config=tokenizer_config())


# --- the CLI chain and the exports ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "visual-tokenizer"
    result = run_cli("pretrain", "--method", "visual_tokenizer", "--preset", "tiny", "--max_steps", "3",
                     "--logging_steps", "1", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    return out


def test_cli_tokenizer_then_beit_and_exports_load_without_hf_ssl(tokenizer_out, tmp_path):
    import json

    state = max((tokenizer_out / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    history = json.loads(state.read_text())["log_history"]
    assert any("codebook_perplexity" in log and "codebook_live_share" in log for log in history)

    out = tmp_path / "beit"
    result = run_cli("pretrain", "--method", "beit", "--preset", "tiny", "--tokenizer", str(tokenizer_out),
                     "--max_steps", "3", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    card = (out / "README.md").read_text()
    # the card names the tokenizer by its folder name, never by a local path, and has no nested-config dump
    assert f"tokenizer={tokenizer_out.name}" in card and str(tokenizer_out) not in card
    assert "tokenizer_config" not in card
    # nor does any other file: BEiT's config names its tokenizer by folder name (its weights are inside ssl/)
    assert_no_local_paths(out, tmp_path, tokenizer_out)
    assert json.loads((out / "ssl" / "config.json").read_text())["tokenizer"] == tokenizer_out.name
    run_python(f"""
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForImageClassification
        for out, kind in (({str(out)!r}, "beit"), ({str(tokenizer_out)!r}, "visual_tokenizer")):
            encoder = AutoModel.from_pretrained(out)
            assert type(encoder).__name__ == "ViTModel", type(encoder)
            classifier, info = AutoModelForImageClassification.from_pretrained(out, num_labels=10, output_loading_info=True)
            assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"], (kind, info)
            assert not info["unexpected_keys"] and not info["mismatched_keys"], (kind, info)
            for name, value in encoder.state_dict().items():
                if not name.startswith("pooler."):     # AutoModel adds a fresh pooler
                    assert torch.equal(classifier.vit.state_dict()[name], value), name
            logits = classifier(pixel_values=torch.randn(2, 3, 16, 16)).logits
            assert logits.shape == (2, 10)
    """)
    # the full models, through their saved code (as the other methods: that code imports hf_ssl)
    run_python(f"""
        import torch
        from transformers import AutoModel
        tokenizer = AutoModel.from_pretrained({str(tokenizer_out / "ssl")!r}, trust_remote_code=True)
        beit = AutoModel.from_pretrained({str(out / "ssl")!r}, trust_remote_code=True)
        assert type(tokenizer).__name__ == "VisualVQModel" and type(beit).__name__ == "BEiTForPreTraining"
        images = torch.randn(2, 3, 16, 16)
        ids = tokenizer.eval().tokenize(images)
        assert ids.shape == (2, 16)
        assert torch.equal(beit.tokenizer.tokenize(images), ids)    # BEiT carries the trained tokenizer
        assert torch.isfinite(beit(images).loss)
    """, block_hf_ssl=False)


def test_cli_beit_without_a_tokenizer_is_one_clear_error_line(tmp_path, capsys):
    from hf_ssl.cli import main

    with pytest.raises(SystemExit) as exit_info:   # in-process: the check runs before any data is loaded
        main(["pretrain", "--method", "beit", "--preset", "tiny", "--max_steps", "1", "--output_dir", str(tmp_path / "out")])
    stderr = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(stderr) == 1, stderr
    assert stderr[0].startswith("hf-ssl: error:") and "--tokenizer" in stderr[0]
    assert not (tmp_path / "out").exists()


def test_cli_tokenizer_distilling_a_teacher(tokenizer_out, tmp_path):
    """VQ-KD from the CLI: the teacher is the encoder another hf-ssl run exported (here the first tokenizer's)."""
    out = tmp_path / "vqkd"
    result = run_cli("pretrain", "--method", "visual_tokenizer", "--preset", "tiny", "--target", "teacher",
                     "--teacher", str(tokenizer_out), "--max_steps", "2", "--eval_protocols", "none",
                     "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    assert_no_local_paths(out, tmp_path, tokenizer_out)  # the teacher is named by its folder, its weights are inside
    loaded = VisualVQModel.from_pretrained(out / "ssl")
    teacher = {k[len("teacher."):]: v for k, v in loaded.state_dict().items() if k.startswith("teacher.")}
    from transformers import ViTModel

    reference = ViTModel.from_pretrained(tokenizer_out, add_pooling_layer=False).state_dict()
    assert teacher.keys() == reference.keys()
    assert all(torch.equal(teacher[k], reference[k]) for k in reference)    # frozen through training, saved inside
