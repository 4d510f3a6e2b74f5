"""The backbone layer: any transformers vision model builds, pools, exports natively and is loaded back."""

import json

import pytest
import torch
from transformers import AutoModel

from conftest import run_python
from hf_ssl.errors import HfSslError
from hf_ssl.nn.backbone import build_backbone, feature_dim, load_backbone_weights, pooled_features
from hf_ssl.nn.backbone_presets import backbone_config_from_spec


@pytest.mark.parametrize("spec, model_class", [("vit-test", "ViTModel"), ("resnet-test", "ResNetModel"),
                                                ("convnext-test", "ConvNextModel")])
def test_presets_build_pool_and_export_natively(spec, model_class, tmp_path):
    config, checkpoint = backbone_config_from_spec(spec)
    assert checkpoint is None
    torch.manual_seed(0)
    backbone = build_backbone(config).eval()
    assert type(backbone).__name__ == model_class
    images = torch.randn(3, 3, 16, 16)
    features = pooled_features(backbone, images)
    assert features.shape == (3, feature_dim(config))
    # pooling is per image: the batch does not leak between samples
    torch.testing.assert_close(pooled_features(backbone, images[:1]), features[:1], atol=1e-5, rtol=1e-4)
    backbone.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    expected = backbone(pixel_values=images).last_hidden_state
    torch.save(images, tmp_path / "images.pt")
    torch.save(expected, tmp_path / "expected.pt")
    run_python(f"""
        import torch
        from transformers import AutoModel, AutoModelForImageClassification
        folder = {str(tmp_path)!r}
        model = AutoModel.from_pretrained(folder).eval()
        images = torch.load(folder + "/images.pt", weights_only=True)
        torch.testing.assert_close(model(pixel_values=images).last_hidden_state,
                                   torch.load(folder + "/expected.pt", weights_only=True), atol=1e-5, rtol=1e-4)
        _, info = AutoModelForImageClassification.from_pretrained(folder, num_labels=10, output_loading_info=True)
        assert all(k.startswith("classifier") for k in info["missing_keys"]), info["missing_keys"]
    """)


def test_vit_cls_and_mean_pooling():
    config, _ = backbone_config_from_spec("vit-test")
    backbone = build_backbone(config).eval()
    images = torch.randn(2, 3, 16, 16)
    hidden = backbone(pixel_values=images).last_hidden_state
    torch.testing.assert_close(pooled_features(backbone, images, "cls"), hidden[:, 0])
    torch.testing.assert_close(pooled_features(backbone, images, "mean"), hidden[:, 1:].mean(1))


def test_hierarchical_token_backbones_pool_every_token_they_have_no_cls():
    """Swin's output tokens are all patches: its features are its own average pooling of all of them, not the
    ViT rule that drops the first token as [CLS]."""
    from transformers import SwinConfig, SwinModel

    swin = SwinModel(SwinConfig(image_size=16, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                window_size=2)).eval()
    pixels = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        tokens = swin(pixel_values=pixels).last_hidden_state
        for pooling in ("auto", "mean", "cls"):
            torch.testing.assert_close(pooled_features(swin, pixels, pooling), tokens.mean(dim=1))
    assert pooled_features(swin, pixels).shape == (3, feature_dim(swin.config))


def test_pooled_features_of_other_sizes_interpolate_vit_position_embeddings():
    # multi-crop's local crops: a ViT built for 16 px takes 8 px crops with interpolated position embeddings
    config, _ = backbone_config_from_spec("vit-test", image_size=16, patch_size=4)
    backbone = build_backbone(config).eval()
    small = torch.randn(2, 3, 8, 8)
    expected = backbone(pixel_values=small, interpolate_pos_encoding=True).last_hidden_state[:, 0]
    torch.testing.assert_close(pooled_features(backbone, small, "cls"), expected)
    # conv backbones take any size as is (no such argument)
    resnet = build_backbone(backbone_config_from_spec("resnet-test", image_size=16)[0]).eval()
    assert pooled_features(resnet, torch.randn(2, 3, 8, 8)).shape[0] == 2


def test_config_file_and_checkpoint_specs(tmp_path):
    config_file = tmp_path / "vit.json"
    config_file.write_text(json.dumps({"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "intermediate_size": 32, "image_size": 8,
                                       "patch_size": 4}))
    config, checkpoint = backbone_config_from_spec(str(config_file), num_hidden_layers=3)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers, checkpoint) == ("vit", 16, 3, None)

    torch.manual_seed(1)
    source = build_backbone(config)
    source.save_pretrained(tmp_path / "ckpt")
    loaded_config, checkpoint = backbone_config_from_spec(str(tmp_path / "ckpt"))
    assert checkpoint == str(tmp_path / "ckpt") and loaded_config.num_hidden_layers == 3
    target = build_backbone(loaded_config)
    load_backbone_weights(target, checkpoint)
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name


def test_bad_backbone_specs(tmp_path):
    with pytest.raises(HfSslError, match="unknown backbone"):
        backbone_config_from_spec("vit-gigantic")
    pickle_only = tmp_path / "pickle_only"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text('{"model_type": "vit"}')
    (pickle_only / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(HfSslError, match="safetensors only"):
        backbone_config_from_spec(str(pickle_only))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(HfSslError, match="not a transformers config"):
        backbone_config_from_spec(str(tmp_path / "broken.json"))
    other, _ = backbone_config_from_spec("resnet-test")
    build_backbone(other).save_pretrained(tmp_path / "resnet")
    vit, _ = backbone_config_from_spec("vit-test")
    with pytest.raises(HfSslError, match="does not match"):
        load_backbone_weights(build_backbone(vit), str(tmp_path / "resnet"))
