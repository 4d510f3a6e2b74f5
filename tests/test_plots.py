"""Plots in the card folder: the PNGs of a real run and the card's links to them, each plot's data against an
independent computation (logged losses, sklearn's PCA, the masked models' own forward passes), staged writes, and a
run without matplotlib."""

import json
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")  # the `test` extra installs it; without it, test_no_matplotlib covers the run

from hf_ssl import MAEConfig, MAEForPreTraining, SimMIMConfig, SimMIMForPreTraining  # noqa: E402
from hf_ssl.hub.card import EVAL_RESULTS_FILE, RUN_INFO_FILE, read_json, write_model_card  # noqa: E402
from hf_ssl.hub.plots import (  # noqa: E402
    BLANK_VALUE, plot_embedding_projection, plot_loss_curve, reconstruction_rows, write_plots)
from conftest import tiny_backbone_config  # noqa: E402

PLOTS = {"plots/loss.png", "plots/projection.png", "plots/reconstruction.png"}
IMAGE_MEAN, IMAGE_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def card_image_links(card: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)


def test_pretraining_writes_the_plots_and_the_card_links_exactly_them(pretrained_out):
    from PIL import Image

    out, result = pretrained_out
    found = {p.relative_to(out).as_posix() for p in (out / "plots").iterdir()}
    assert found == PLOTS
    for name in PLOTS:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) >= 200
            image.load()  # decodes the whole file: truncated data raises
        assert (out / name).stat().st_size < 150_000  # "a few tens of KB"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert sorted(card_image_links(card)) == sorted(PLOTS)
    assert card.index("## Plots") < card.index("## How to use")
    assert not [p for p in out.iterdir() if p.name.startswith(".plots")]  # no staging left behind


def test_loss_curve_plots_the_logged_losses(pretrained_out, tmp_path):
    out, _ = pretrained_out
    state = json.loads((out / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    logged = [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]
    assert [step for step, _ in logged] == [1, 2, 3, 4, 5, 6]  # --logging_steps 1
    figure = plot_loss_curve(state["log_history"], tmp_path / "loss.png")
    line = figure.axes[0].lines[0]
    assert list(line.get_xdata()) == [step for step, _ in logged]
    assert list(line.get_ydata()) == pytest.approx([loss for _, loss in logged], abs=0)
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_loss_curve_scale_and_empty_history(tmp_path):
    spread = [{"step": s, "loss": 10.0 / s ** 2} for s in range(1, 11)]   # falls 100x: log scale
    assert plot_loss_curve(spread, tmp_path / "a.png").axes[0].get_yscale() == "log"
    negative = [{"step": s, "loss": -0.9 + 0.01 * s} for s in range(1, 11)]  # a negative-cosine loss: linear
    assert plot_loss_curve(negative, tmp_path / "b.png").axes[0].get_yscale() == "linear"
    assert plot_loss_curve([{"train_runtime": 1.0}], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def test_projection_is_the_pca_of_a_seeded_subset(tmp_path):
    from sklearn.decomposition import PCA

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (500,), generator=generator)
    centres = torch.randn(4, 16, generator=generator) * 3
    features = centres[labels] + torch.randn(500, 16, generator=generator) * torch.linspace(2, 0.1, 16)
    names = ["cat", "dog", "bird", "fish"]
    drawn = plot_embedding_projection(features, labels, names, tmp_path / "p.png", max_points=200, seed=3)
    again = plot_embedding_projection(features, labels, names, tmp_path / "q.png", max_points=200, seed=3)
    assert torch.equal(drawn.indices, again.indices)  # seeded
    assert len(set(drawn.indices.tolist())) == 200 and torch.equal(drawn.indices, drawn.indices.sort().values)

    expected = torch.from_numpy(PCA(n_components=2).fit_transform(features[drawn.indices].double().numpy()))
    for axis in range(2):  # principal axes are defined up to sign
        sign = torch.sign((drawn.points[:, axis] * expected[:, axis]).sum())
        torch.testing.assert_close(drawn.points[:, axis], sign * expected[:, axis], atol=1e-8, rtol=1e-8)
    # every plotted point, class by class, is one of the projected points of that class
    axes = drawn.figure.axes[0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == names
    for collection, label in zip(axes.collections, range(4)):
        plotted = torch.from_numpy(np.asarray(collection.get_offsets())).double()
        torch.testing.assert_close(plotted, drawn.points[labels[drawn.indices] == label])


def tiny_mae(norm_pix_loss: bool) -> MAEForPreTraining:
    torch.manual_seed(0)
    config = MAEConfig(backbone_config=tiny_backbone_config("vit-test"), decoder_hidden_size=32,
                       decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64,
                       norm_pix_loss=norm_pix_loss)
    return MAEForPreTraining(config).eval()


def random_images(count: int = 3, size: int = 16) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def patch_mask(pixel_mask: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, 1, H, W) pixel mask -> (B, N) patch mask, checking that it is constant inside each patch."""
    b, _, h, w = pixel_mask.shape
    blocks = pixel_mask.view(b, h // patch, patch, w // patch, patch).permute(0, 1, 3, 2, 4)
    blocks = blocks.reshape(b, -1, patch * patch)
    assert (blocks.all(-1) | ~blocks.any(-1)).all(), "mask not aligned to patches"
    return blocks[..., 0]


def check_rows(rows, images: torch.Tensor, predicted_pixels) -> None:
    """Visible pixels of the masked and reconstruction rows are the original; masked ones are grey in the masked
    row and `predicted_pixels(b, c, y, x)` (an independent computation, in [0, 1] before clamping) in the last."""
    original = images.double() / 255
    torch.testing.assert_close(rows.original.double(), original)
    visible = ~rows.mask.expand_as(rows.original)
    assert torch.equal(rows.masked[visible], rows.original[visible])
    assert torch.equal(rows.reconstruction[visible], rows.original[visible])
    assert (rows.masked[~visible] == BLANK_VALUE).all()
    masked_positions = (~visible).nonzero().tolist()
    assert masked_positions
    expected = torch.tensor([min(max(predicted_pixels(b, c, y, x), 0.0), 1.0) for b, c, y, x in masked_positions])
    actual = torch.stack([rows.reconstruction[b, c, y, x] for b, c, y, x in masked_positions]).double()
    torch.testing.assert_close(actual, expected.double(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_mae_reconstruction_rows_against_its_forward_pass(norm_pix_loss):
    model, images, patch = tiny_mae(norm_pix_loss), random_images(), 4
    rows = reconstruction_rows(model, images, IMAGE_MEAN, IMAGE_STD, seed=0)
    masked = patch_mask(rows.mask, patch)
    assert masked.sum(1).tolist() == [16 - int(16 * 0.25)] * 3  # 75% of the 4x4 patches
    again = reconstruction_rows(model, images, IMAGE_MEAN, IMAGE_STD, seed=0)
    assert torch.equal(again.mask, rows.mask)  # the seed fixes the masks

    # The model's own forward pass with noise that hides exactly these patches (the encoder does not depend on the
    # order of the visible tokens, only on which they are).
    mean, std = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    pixels = (images.float() / 255 - mean) / std
    noise = masked.float() + torch.rand(masked.shape, generator=torch.Generator().manual_seed(5)) * 0.5
    with torch.no_grad():
        output = model(pixels, noise=noise)
    assert torch.equal(output.mask.bool(), masked)
    logits = output.logits.double()

    def predicted(b, c, y, x):
        row, col, p, q = y // patch, x // patch, y % patch, x % patch
        value = logits[b, row * 4 + col, (p * patch + q) * 3 + c].item()  # reference layout: (p, q, c)
        if norm_pix_loss:  # un-normalised with the true patch's mean and (unbiased) variance, all channels together
            block = pixels[b, :, row * patch:(row + 1) * patch, col * patch:(col + 1) * patch].double()
            value = value * (block.var().item() + 1e-6) ** 0.5 + block.mean().item()
        return value * IMAGE_STD[c] + IMAGE_MEAN[c]

    check_rows(rows, images, predicted)


def test_simmim_reconstruction_rows_against_its_forward_pass():
    torch.manual_seed(0)
    config = SimMIMConfig(backbone_config=tiny_backbone_config("vit-test"), mask_patch_size=8)
    model = SimMIMForPreTraining(config).eval()
    images = random_images()
    rows = reconstruction_rows(model, images, IMAGE_MEAN, IMAGE_STD, seed=0)
    masked = patch_mask(rows.mask, 4)
    # 8 px mask patches (a 2x2 grid of them), 60% masked: 3 of 4 squares, each 4 backbone patches
    assert masked.sum(1).tolist() == [12] * 3
    cells = patch_mask(rows.mask, 8)
    assert cells.sum(1).tolist() == [3] * 3
    mean, std = torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGE_STD).view(1, 3, 1, 1)
    pixels = (images.float() / 255 - mean) / std
    with torch.no_grad():
        reconstruction = model(pixels, bool_masked_pos=masked).reconstruction.double()
    check_rows(rows, images, lambda b, c, y, x: reconstruction[b, c, y, x].item() * IMAGE_STD[c] + IMAGE_MEAN[c])


def test_card_links_the_plots_present_now(pretrained_out, tmp_path):
    """`hf-ssl evaluate` and `hf-ssl push` re-render the card: it follows OUT/plots, not the pretraining run."""
    out = shutil.copytree(pretrained_out[0], tmp_path / "out", ignore=shutil.ignore_patterns("checkpoints"))
    run_info, results = read_json(out / "ssl" / RUN_INFO_FILE), read_json(out / EVAL_RESULTS_FILE)
    (out / "plots" / "projection.png").unlink()
    write_model_card(out, run_info, results)
    assert card_image_links((out / "README.md").read_text()) == ["plots/loss.png", "plots/reconstruction.png"]
    shutil.rmtree(out / "plots")
    write_model_card(out, run_info, results)
    card = (out / "README.md").read_text()
    assert "## Plots" not in card and not card_image_links(card)
    assert "\n\n\n" not in card.split("## Training")[1]  # no empty section or stray blank lines left


def test_every_card_template_renders_the_plots_section():
    import jinja2
    from importlib import resources
    from jinja2 import meta

    folder = resources.files("hf_ssl.model_cards")
    templates = sorted(p.name for p in folder.iterdir() if p.name.endswith(".md.j2"))
    assert len(templates) >= 4
    for name in templates:
        source = folder.joinpath(name).read_text(encoding="utf-8")
        assert "plots_section" in meta.find_undeclared_variables(jinja2.Environment().parse(source)), name


def test_failed_drawing_keeps_the_previous_plots(tmp_path, capsys):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"old")

    def draw(folder):
        (folder / "loss.png").write_bytes(b"new, half done")
        raise RuntimeError("drawing broke")

    assert write_plots(tmp_path, draw) == [tmp_path / "plots" / "loss.png"]
    assert (tmp_path / "plots" / "loss.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]  # no staging folder left
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["No plots drawn: RuntimeError: drawing broke"]

    write_plots(tmp_path, lambda folder: (folder / "loss.png").write_bytes(b"new"))
    assert (tmp_path / "plots" / "loss.png").read_bytes() == b"new"
    assert oct((tmp_path / "plots").stat().st_mode & 0o777) == oct(0o777 & ~current_umask())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots"]


def current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_without_matplotlib_the_run_succeeds_without_plots(tmp_path):
    out = tmp_path / "mae"
    script = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None   # as if it were not installed
        from hf_ssl.cli import main
        main(["pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "1", "--eval_protocols", "none",
              "--output_dir", {str(out)!r}])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    hints = [line for line in result.stderr.splitlines() if "matplotlib" in line]
    assert hints == ["No plots drawn: matplotlib is not installed (pip install 'hf-ssl[plots]')"]
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    assert not (out / "plots").exists() and not [p for p in out.iterdir() if p.name.startswith(".plots")]
    assert "## Plots" not in (out / "README.md").read_text()
