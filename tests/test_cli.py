"""End to end through the `hf-ssl` command: pretrain -> OUT -> plain transformers in a process where
hf_ssl cannot be imported; resume; evaluate; every user error is one line on stderr."""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from conftest import assert_no_local_paths, run_cli, run_python


def test_list_prints_every_method():
    import hf_ssl

    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    assert set(hf_ssl.METHODS) <= names
    assert "digits" in result.stdout and "fashion_mnist" in result.stdout


def test_pretrain_writes_a_hub_ready_folder(pretrained_out):
    out, result = pretrained_out
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "eval_results.json",
                 "ssl/config.json", "ssl/model.safetensors", "ssl/modeling_mae.py", "ssl/configuration_mae.py"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.bin")) or all("checkpoints" in str(p) for p in out.rglob("*.bin"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "staging leftovers"
    assert (out / "checkpoints" / "checkpoint-6").is_dir()
    # the loss was logged every step and the final summary names the kNN accuracy
    assert len(re.findall(r"'loss': ", result.stdout + result.stderr)) >= 6
    assert re.search(r"knn accuracy on digits test: \d+\.\d+%", result.stdout)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "vit" and config["architectures"] == ["ViTModel"]


def test_model_card_front_matter_and_no_local_paths(pretrained_out):
    from huggingface_hub import ModelCard

    out, _ = pretrained_out
    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert {"self-supervised", "mae"} <= set(data["tags"])
    measured = json.loads((out / "eval_results.json").read_text())["knn"]["value"]
    metric = data["model-index"][0]["results"][0]["metrics"][0]
    assert metric["type"] == "accuracy" and metric["value"] == pytest.approx(measured, abs=1e-4)
    assert "AutoModel.from_pretrained" in card.text
    assert_no_local_paths(out, out.parent)


def test_export_loads_and_fine_tunes_without_hf_ssl(pretrained_out, tmp_path):
    out, _ = pretrained_out
    run_python(f"""
        import torch, numpy as np
        from PIL import Image
        from sklearn.datasets import load_digits
        from transformers import (AutoImageProcessor, AutoModel, AutoModelForImageClassification, Trainer,
                                  TrainingArguments)

        out = {str(out)!r}
        encoder = AutoModel.from_pretrained(out)
        processor = AutoImageProcessor.from_pretrained(out)
        assert type(encoder).__name__ == "ViTModel"

        classifier, info = AutoModelForImageClassification.from_pretrained(out, num_labels=10, output_loading_info=True)
        new = sorted(info["missing_keys"])
        assert new == ["classifier.bias", "classifier.weight"], new
        assert not info["unexpected_keys"] and not info["mismatched_keys"]
        shared = [n for n in encoder.state_dict() if not n.startswith("pooler.")]  # AutoModel adds a fresh pooler
        assert len(shared) > 10
        for name in shared:   # the encoder weights are the pretrained ones
            assert torch.equal(classifier.vit.state_dict()[name], encoder.state_dict()[name]), name

        # grayscale, RGB and RGBA images all become what the model expects
        digits = load_digits()
        gray = [Image.fromarray((d * 255 / 16).astype(np.uint8)) for d in digits.images[:64]]
        for mode in ("L", "RGB", "RGBA"):
            x = processor([g.convert(mode) for g in gray[:2]], return_tensors="pt")["pixel_values"]
            assert x.shape == (2, 3, 16, 16), (mode, x.shape)
        features = encoder(**processor(gray[:4], return_tensors="pt")).last_hidden_state
        assert torch.isfinite(features).all()

        pixel_values = processor(gray, return_tensors="pt")["pixel_values"]
        train = [dict(pixel_values=p, labels=int(l)) for p, l in zip(pixel_values, digits.target[:64])]
        before = {{k: v.clone() for k, v in classifier.state_dict().items()}}
        args = TrainingArguments({str(tmp_path / "ft")!r}, max_steps=8, per_device_train_batch_size=16,
                                 learning_rate=1e-3, logging_steps=1, report_to="none", use_cpu=True, save_strategy="no")
        result = Trainer(model=classifier, args=args, train_dataset=train).train()
        assert np.isfinite(result.training_loss)
        changed = [k for k, v in classifier.state_dict().items() if not torch.equal(v, before[k])]
        assert "classifier.weight" in changed and any(k.startswith("vit.layers") for k in changed)
    """)


def test_pretraining_model_loads_with_trust_remote_code(pretrained_out):
    out, _ = pretrained_out
    # A fresh process that never imported hf_ssl: the class comes from the code saved in ssl/.
    run_python(f"""
        import sys, torch
        from transformers import AutoModel, AutoModelForPreTraining
        model = AutoModelForPreTraining.from_pretrained({str(out / "ssl")!r}, trust_remote_code=True)
        assert type(model).__name__ == "MAEForPreTraining"
        assert "transformers_modules" in type(model).__module__, type(model).__module__
        output = model(torch.randn(2, 3, 16, 16))
        assert output.loss.ndim == 0 and torch.isfinite(output.loss)
        assert type(AutoModel.from_pretrained({str(out / "ssl")!r}, trust_remote_code=True)).__name__ == "MAEForPreTraining"
    """, block_hf_ssl=False)


def test_a_schedule_in_epochs_trains_at_least_min_steps(tmp_path):
    """The `small` presets' epochs are sized for Fashion-MNIST; on a small dataset `--min_steps` (which they set)
    raises the run to that many optimizer steps. digits: 1,437 training images in batches of 1,000 are 2 steps an
    epoch, so one epoch with `--min_steps 5` trains 5 steps, as Trainer counts them."""
    from transformers import TrainingArguments

    from hf_ssl.training.pretrain import scheduled_steps

    out = tmp_path / "min-steps"
    result = run_cli("pretrain", "--method", "autoencoder", "--preset", "tiny", "--num_train_epochs", "1",
                     "--min_steps", "5", "--per_device_train_batch_size", "1000", "--save_steps", "5",
                     "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((out / "checkpoints" / "checkpoint-5" / "trainer_state.json").read_text())
    assert state["global_step"] == state["max_steps"] == 5
    # enough epochs, an explicit --max_steps, or min_steps 0: the schedule is left as given (-1: count the epochs)
    arguments = lambda **kw: TrainingArguments(output_dir=str(tmp_path), use_cpu=True,  # noqa: E731
                                               per_device_train_batch_size=1000, **kw)
    assert scheduled_steps(arguments(num_train_epochs=2), 1437, 5) == 5  # 4 steps < 5
    assert scheduled_steps(arguments(num_train_epochs=3), 1437, 5) == -1  # 6 steps
    assert scheduled_steps(arguments(num_train_epochs=2, gradient_accumulation_steps=2), 1437, 3) == 3  # 2 steps
    assert scheduled_steps(arguments(max_steps=2), 1437, 5) == 2
    assert scheduled_steps(arguments(num_train_epochs=1), 1437, 0) == -1


def test_rerun_resumes_from_last_checkpoint(tmp_path):
    out = tmp_path / "resume"
    common = ["pretrain", "--method", "mae", "--preset", "tiny", "--save_steps", "2", "--eval_protocols", "none", "--logging_steps", "1",
              "--output_dir", str(out)]
    first = run_cli(*common, "--max_steps", "4")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli(*common, "--max_steps", "6")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from" in second.stdout and "checkpoint-4" in second.stdout
    state = json.loads((out / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    # the second run trained steps 5-6 only (the first run's loss history is kept, not redone)
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert len(re.findall(r"'loss': ", second.stdout + second.stderr)) == 2


def test_evaluate_prints_json_and_updates_card(pretrained_out):
    out, _ = pretrained_out
    result = run_cli("evaluate", "--model", str(out), "--dataset", "digits", "--protocol", "knn,linear", "--k", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout[result.stdout.index("{"):])
    assert set(printed) == {"knn", "linear"}
    assert 0.1 < printed["linear"]["value"] <= 1.0 and printed["knn"]["params"]["k"] == 5
    saved = json.loads((out / "eval_results.json").read_text())
    assert saved["linear"]["value"] == printed["linear"]["value"]
    assert "linear probe" in (out / "README.md").read_text()


def _write_images(folder, specs):
    for name, mode, size in specs:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        array = np.random.default_rng(len(name)).integers(0, 255, (size, size, 4), dtype=np.uint8)
        Image.fromarray(array, "RGBA").convert(mode).save(path)


def test_imagefolder_with_mixed_modes_trains(tmp_path):
    data = tmp_path / "images"
    _write_images(data, [(f"{cls}/{i}.png", mode, 12 + i) for cls in ("a", "b")
                         for i, mode in enumerate(["L", "RGB", "RGBA", "P", "RGB", "L"])])
    out = tmp_path / "out"
    result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--dataset", f"imagefolder:{data}", "--max_steps", "2",
                     "--per_device_train_batch_size", "4", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    assert "Not evaluated" in result.stdout  # one split only: nothing to test on
    assert str(tmp_path) not in (out / "README.md").read_text()


def test_local_hub_layout_dataset_trains(tmp_path):
    import datasets

    rows = {"img": [Image.fromarray(np.full((16, 16, 3), 10 * i, np.uint8)) for i in range(12)],
            "label": [i % 3 for i in range(12)]}
    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y", "z"])})
    repo = tmp_path / "org_dataset"
    (repo / "data").mkdir(parents=True)
    for split in ("train", "test"):
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(repo / "data" / f"{split}-00000-of-00001.parquet"))
    out = tmp_path / "out"
    result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--dataset", str(repo), "--max_steps", "2", "--knn_k", "3",
                     "--per_device_train_batch_size", "4", "--output_dir", str(out),
                     env={"HF_DATASETS_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "eval_results.json").read_text())["knn"]["dataset"] == "org_dataset"


def _bad_inputs(tmp_path):
    corrupt = tmp_path / "corrupt"
    _write_images(corrupt, [("a/ok.png", "RGB", 16)])
    (corrupt / "a" / "broken.png").write_bytes(b"not a png at all")
    small = tmp_path / "small"
    _write_images(small, [("a/ok.png", "RGB", 16), ("a/tiny.png", "RGB", 2)])
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    pickle_ckpt = tmp_path / "pickle_ckpt"
    pickle_ckpt.mkdir()
    (pickle_ckpt / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (pickle_ckpt / "pytorch_model.bin").write_bytes(b"\x80\x04")
    return {
        "unknown method": (["--method", "nope"], "unknown method 'nope'"),
        "unknown dataset": (["--dataset", "not_a_dataset"], "unknown dataset"),
        "unknown preset": (["--preset", "huge"], "unknown preset"),
        "mask ratio": (["--mask_ratio", "1.5"], "mask_ratio must be in (0, 1)"),
        "bad flag value": (["--mask_ratio", "lots"], "invalid float value"),
        "unknown flag": (["--no_such_flag", "1"], "unrecognized arguments"),
        "output is a file": (["--output_dir", str(a_file)], "is a file"),
        "pickle checkpoint": (["--backbone", str(pickle_ckpt)], "safetensors only"),
        "corrupt image": (["--dataset", f"imagefolder:{corrupt}"], "broken.png"),
        "image smaller than a patch": (["--dataset", f"imagefolder:{small}"], "smaller than one 4x4 patch"),
        "missing column": (["--dataset", "digits", "--image_column", "photo"], "no column 'photo'"),
        "missing folder": (["--dataset", f"imagefolder:{tmp_path / 'nowhere'}"], "nowhere"),
        "wrong backbone type": (["--backbone", "resnet-test"], "ViT backbone"),
        "image not a patch multiple": (["--image_size", "18"], "multiple of patch_size"),
        "zero patch size": (["--patch_size", "0"], "must be positive"),
    }


@pytest.mark.parametrize("case", ["unknown method", "unknown dataset", "unknown preset", "mask ratio", "bad flag value",
                                  "unknown flag", "output is a file", "pickle checkpoint", "corrupt image",
                                  "image smaller than a patch", "missing column", "missing folder",
                                  "wrong backbone type", "image not a patch multiple", "zero patch size"])
def test_user_errors_are_one_line_and_leave_no_output(case, tmp_path, capsys):
    from hf_ssl.cli import main

    args, expected = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    if "--output_dir" not in args:
        args = [*args, "--output_dir", str(out)]
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "1", "--eval_protocols", "none", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "requires torchvision" not in line]
    assert len(lines) == 1 and lines[0].startswith("hf-ssl: error:"), err
    assert expected in lines[0]
    assert not out.exists()


def test_user_error_in_a_real_process_has_no_traceback(tmp_path):
    result = run_cli("pretrain", "--method", "mae", "--mask_ratio", "0", "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hf-ssl: error: invalid mae configuration: mask_ratio must be in (0, 1), got 0.0"]
    assert not (tmp_path / "out").exists()


def test_backbone_checkpoint_initialises_the_encoder(pretrained_out, tmp_path):
    from safetensors.torch import load_file

    source, _ = pretrained_out
    out = tmp_path / "continued"
    # lr 0: training changes nothing, so the exported encoder must be exactly the checkpoint's weights.
    result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--backbone", str(source), "--max_steps", "1",
                     "--learning_rate", "0", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = load_file(source / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    for name in before:
        assert (before[name] == after[name]).all(), name


def test_method_flags_reach_the_config(tmp_path):
    out = tmp_path / "flags"
    result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--mask_ratio", "0.5", "--norm_pix_loss", "false",
                     "--decoder_hidden_size", "16", "--max_steps", "1", "--eval_protocols", "none",
                     "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "ssl" / "config.json").read_text())
    assert (config["mask_ratio"], config["norm_pix_loss"], config["decoder_hidden_size"]) == (0.5, False, 16)
