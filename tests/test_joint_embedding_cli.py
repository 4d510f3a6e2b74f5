"""Every joint-embedding method end to end from the CLI, half of them with a ResNet and half with a ViT backbone:
`hf-ssl pretrain --preset tiny` on digits trains, logs the collapse monitor, exports OUT, and a process where hf_ssl
is blocked loads the encoder with AutoModel and AutoModelForImageClassification, reusing every encoder weight.
(Each method with both backbones is tested at the model level in its own test file; one CLI run per method keeps
the suite inside CI's budget.)"""

import json

import pytest

from conftest import joint_embedding_methods, run_cli, run_python

JOINT_EMBEDDING_METHODS = joint_embedding_methods()

BACKBONES = {
    "resnet-test": ("ResNetModel", ["classifier.1.bias", "classifier.1.weight"]),
    "vit-test": ("ViTModel", ["classifier.bias", "classifier.weight"]),
}


def test_every_method_of_the_issue_is_registered():
    expected = {"simclr", "moco", "byol", "simsiam", "swav", "vicreg", "barlow_twins", "dino"}
    assert expected <= set(JOINT_EMBEDDING_METHODS), sorted(expected - set(JOINT_EMBEDDING_METHODS))


# with the ViT: DINO (multi-crop at two resolutions) and MoCo (v3 is the ViT recipe), and two more; the others, and
# any method added later, with the ResNet
VIT_RUNS = {"dino", "moco", "byol", "vicreg"}
CLI_RUNS = [(method, "vit-test" if method in VIT_RUNS else "resnet-test") for method in JOINT_EMBEDDING_METHODS]


@pytest.mark.parametrize(("method", "backbone"), CLI_RUNS)
def test_cli_pretrain_exports_a_native_encoder(method, backbone, tmp_path):
    native, expected_missing = BACKBONES[backbone]
    out = tmp_path / f"{method}-{backbone}"
    args = ["pretrain", "--method", method, "--preset", "tiny", "--backbone", backbone, "--max_steps", "3",
            "--logging_steps", "1", "--eval_protocols", "knn", "--output_dir", str(out)]
    if backbone.startswith("vit"):
        args += ["--image_size", "16", "--patch_size", "4"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "knn" in json.loads((out / "eval_results.json").read_text())
    assert (out / "ssl" / f"modeling_{method}.py").is_file()
    ssl_config = json.loads((out / "ssl" / "config.json").read_text())
    assert ssl_config["model_type"] == f"hf_ssl_{method}" and ssl_config["backbone_config"]["image_size"] == 16
    assert "embedding_std" in result.stdout + result.stderr  # the collapse monitor sees last_embeddings
    losses = [entry["loss"] for entry in json.loads(
        (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())["log_history"] if "loss" in entry]
    assert len(losses) == 3 and all(loss == loss and abs(loss) < 1e6 for loss in losses), losses  # finite
    run_python(f"""
        import torch
        from transformers import AutoModel, AutoModelForImageClassification

        out = {str(out)!r}
        encoder = AutoModel.from_pretrained(out)
        assert type(encoder).__name__ == {native!r}, type(encoder).__name__
        classifier, info = AutoModelForImageClassification.from_pretrained(out, num_labels=10, output_loading_info=True)
        missing = sorted(info["missing_keys"])
        assert missing == {expected_missing!r}, missing  # only the new classifier; every encoder weight is reused
        assert not info["unexpected_keys"] and not info["mismatched_keys"], info
        with torch.no_grad():
            logits = classifier(pixel_values=torch.randn(2, 3, 16, 16)).logits
        assert logits.shape == (2, 10)
    """)
