"""Plots in the card folder (`OUT/plots/*.png`): the training-loss curve, a 2-D projection of test embeddings
coloured by label, and original / masked / reconstruction grids of masked image models.

matplotlib is an optional extra (`pip install 'hf-ssl[plots]'`): without it no plots are drawn and the run goes on.
It is imported lazily and used through `matplotlib.figure.Figure` + the Agg canvas only, never `pyplot`, so
drawing changes no global backend or state of a user's process and leaves no figures behind.

The plots are drawn into a hidden staging folder and moved to `OUT/plots` at the end, like the export, so a failure
never leaves a half-drawn folder; the card links whatever `OUT/plots` holds (`plot_entries`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ..nn.normalization import PixelNormalization, rescale_pixels

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..modeling.method_model import MethodModel

PLOTS_SUBDIR = "plots"
LOSS_PLOT = "loss.png"
PROJECTION_PLOT = "projection.png"
RECONSTRUCTION_PLOT = "reconstruction.png"
INSTALL_HINT = "pip install 'hf-ssl[plots]'"
DPI = 100
BLANK_VALUE = 0.5  # the grey that stands for a masked patch in the "masked" row

# What the card says about each plot, in the order the card shows them; other PNGs found in OUT/plots follow.
PLOT_CAPTIONS = {
    LOSS_PLOT: ("Training loss", "The training loss at every logged optimizer step (learning rate dashed); when the "
                "run evaluated while training (`--eval_steps`), below it the online kNN accuracy on held-out images "
                "and the RankMe of their features (dashed)."),
    PROJECTION_PLOT: ("Test embeddings (PCA)", "The encoder's features of test images (up to 2,000, pooled as in "
                      "the evaluation) on their first two principal components, coloured by label."),
    RECONSTRUCTION_PLOT: ("What the model makes of test images", "Test images (training images when the data has "
                          "no test split): the original (top), what the model saw (middle: masked patches or "
                          "regions grey, a corrupted, rotated, shuffled or lightness-only image), and its prediction "
                          "(bottom; where pixels were hidden, the prediction there with the visible ones pasted back). "
                          "Each row is named on the left."),
}


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(out_dir: str | os.PathLike, draw: Callable[[Path], None]) -> list[Path]:
    """Run `draw(folder)` on a staging folder and move what it drew to `OUT/plots` (replacing older plots).

    Plots illustrate a finished run: if matplotlib is missing, or drawing fails, one line says so and the run
    goes on with the plots it had (a failed drawing keeps the previous `OUT/plots`, never half of a new one).
    Returns the PNGs now in `OUT/plots`."""
    out_dir = Path(out_dir)
    if not matplotlib_available():
        print(f"No plots drawn: matplotlib is not installed ({INSTALL_HINT})", file=sys.stderr)
        return sorted((out_dir / PLOTS_SUBDIR).glob("*.png"))
    staging = Path(tempfile.mkdtemp(prefix=".plots-", dir=out_dir))
    try:
        drawn = staging / PLOTS_SUBDIR  # made by mkdir (mkdtemp's own folder is private, mode 0700)
        drawn.mkdir()
        draw(drawn)
        if any(drawn.iterdir()):
            _replace_folder(drawn, out_dir / PLOTS_SUBDIR)
    except Exception as e:  # noqa: BLE001 -- a plot must never cost the trained, exported model
        print(f"No plots drawn: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted((out_dir / PLOTS_SUBDIR).glob("*.png"))


def plot_entries(out_dir: str | os.PathLike) -> list[dict[str, str]]:
    """`[{title, path, caption}]` for every PNG in `OUT/plots`, path relative to OUT (what the card links)."""
    folder = Path(out_dir) / PLOTS_SUBDIR
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.glob("*.png") if p.is_file())
    ordered = [n for n in PLOT_CAPTIONS if n in names] + [n for n in names if n not in PLOT_CAPTIONS]
    entries = []
    for name in ordered:
        title, caption = PLOT_CAPTIONS.get(name, (Path(name).stem.replace("_", " ").capitalize(), ""))
        entries.append(dict(path=f"{PLOTS_SUBDIR}/{name}", title=title, caption=caption))
    return entries


def plot_loss_curve(log_history: Sequence[dict[str, Any]], path: str | os.PathLike) -> Figure | None:
    """The training loss against the optimizer step, from `trainer.state.log_history` (every entry with a `loss`),
    with the learning rate on a second axis. Log scale when the positive losses span more than a factor of 10.
    When the run evaluated while training (`--eval_steps`), a second panel below shares the step axis: the online
    kNN accuracy (`eval_knn_accuracy`) and, on its own axis, RankMe (`eval_rankme`).
    Returns the figure (already saved to `path`), or None when nothing was logged."""
    from matplotlib.figure import Figure

    logged = [entry for entry in log_history if "loss" in entry and "step" in entry]
    if not logged:
        return None
    steps = [entry["step"] for entry in logged]
    losses = [float(entry["loss"]) for entry in logged]
    evaluated = [entry for entry in log_history if "eval_knn_accuracy" in entry and "step" in entry]
    figure = Figure(figsize=(5.5, 6.0 if evaluated else 3.5), layout="constrained")
    axes = figure.add_subplot(2, 1, 1) if evaluated else figure.add_subplot()
    axes.plot(steps, losses, color="tab:blue", linewidth=1.2, marker="." if len(steps) < 50 else None)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss")
    if min(losses) > 0 and max(losses) / min(losses) > 10:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    rates = [(entry["step"], entry["learning_rate"]) for entry in logged if "learning_rate" in entry]
    if rates:
        lr_axes = axes.twinx()
        lr_axes.plot(*zip(*rates), color="tab:gray", linestyle="--", linewidth=0.8)
        lr_axes.set_ylabel("learning rate", color="tab:gray")
        lr_axes.tick_params(axis="y", colors="tab:gray")
    if evaluated:
        _plot_online_evaluation(figure.add_subplot(2, 1, 2, sharex=axes), evaluated)
    figure.savefig(path, dpi=DPI)
    return figure


def _plot_online_evaluation(axes, evaluated: Sequence[dict[str, Any]]) -> None:
    steps = [entry["step"] for entry in evaluated]
    marker = "o" if len(steps) < 50 else None
    axes.plot(steps, [100 * float(entry["eval_knn_accuracy"]) for entry in evaluated], color="tab:green",
              marker=marker, linewidth=1.2)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("online kNN accuracy (%)", color="tab:green")
    axes.grid(alpha=0.3)
    ranks = [(entry["step"], float(entry["eval_rankme"])) for entry in evaluated if "eval_rankme" in entry]
    if ranks:
        rank_axes = axes.twinx()
        rank_axes.plot(*zip(*ranks), color="tab:purple", linestyle="--", linewidth=0.8, marker=marker)
        rank_axes.set_ylabel("RankMe", color="tab:purple")
        rank_axes.tick_params(axis="y", colors="tab:purple")


@dataclass
class Projection:
    """What `plot_embedding_projection` drew: the rows of the features it kept and their 2-D coordinates."""

    indices: torch.Tensor  # (M,) rows of the input features, ascending
    points: torch.Tensor  # (M, 2) float64 coordinates on the first two principal components
    figure: Figure


def pca_2d(features: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, 2): the centred features on their first two principal components (exact SVD in float64), each
    axis's sign fixed so that its largest loading is positive (so the picture does not flip between runs)."""
    centred = features.double() - features.double().mean(dim=0, keepdim=True)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)
    components = components[:2]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    return centred @ (components * signs).T


def subsample(count: int, max_count: int, seed: int = 0) -> torch.Tensor:
    """At most `max_count` of `range(count)`, drawn without replacement (seeded), in ascending order."""
    if count <= max_count:
        return torch.arange(count)
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:max_count].sort().values


def plot_embedding_projection(features: torch.Tensor, labels: torch.Tensor, class_names: Sequence[str] | None,
                              path: str | os.PathLike, max_points: int = 2000, seed: int = 0,
                              title: str = "test embeddings, PCA") -> Projection:
    """A scatter plot of the features' 2-D PCA projection coloured by label, with a legend of class names.
    At most `max_points` points (a seeded random subset), so large test sets stay readable and fast."""
    from matplotlib.figure import Figure

    indices = subsample(features.shape[0], max_points, seed)
    points = pca_2d(features[indices])
    kept_labels = labels[indices]
    classes = sorted(int(c) for c in kept_labels.unique())
    figure = Figure(figsize=(6.0, 4.5), layout="constrained")
    axes = figure.add_subplot()
    colours = figure_colours(len(classes))
    for colour, label in zip(colours, classes):  # one call per class (not per point): the legend names classes
        rows = kept_labels == label
        name = class_names[label] if class_names and label < len(class_names) else str(label)
        axes.scatter(points[rows, 0].numpy(), points[rows, 1].numpy(), s=6, alpha=0.7, color=colour, label=name,
                     linewidths=0)
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.set_title(f"{title} ({len(indices)} points)", fontsize=10)
    if len(classes) <= 20:
        axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2, frameon=False)
    figure.savefig(path, dpi=DPI)
    return Projection(indices=indices, points=points, figure=figure)


def figure_colours(count: int) -> list:
    """Distinct colours for `count` classes: tab10 / tab20, else evenly spaced hues."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["hsv"](i / count) for i in range(count)]


@dataclass
class ReconstructionRows:
    """The three rows of a reconstruction grid, each (B, C, H, W) float in [0, 1]."""

    original: torch.Tensor
    masked: torch.Tensor
    reconstruction: torch.Tensor
    mask: torch.Tensor  # (B, 1, H, W) bool, True where the model did not see the pixel
    labels: tuple[str, str, str] = ("original", "masked", "reconstruction")


@torch.no_grad()
def reconstruction_rows(model: MethodModel, images: torch.Tensor, image_mean: Sequence[float],
                        image_std: Sequence[float], seed: int = 0) -> ReconstructionRows | None:
    """The rows of the card's reconstruction plot of uint8 images (N, C, H, W), from the method contract's `preview`
    (MAE, SimMIM: their own masking, drawn from a generator seeded with `seed`), which takes and returns pixels in the
    model's input normalisation; None for methods without a preview. Hidden pixels are grey in the input row; the
    reconstruction row shows the prediction at hidden pixels and the original at visible ones (the MAE paper's
    Fig. 2)."""
    model.eval()
    device = next(model.parameters()).device
    normalize = PixelNormalization(image_mean, image_std)
    original = rescale_pixels(images)
    pixel_values = normalize(original).to(device)
    preview = model.preview(pixel_values, generator=torch.Generator().manual_seed(seed))
    if preview is None:
        return None
    predicted = normalize.invert(preview.reconstruction.float().cpu()).clamp(0.0, 1.0)
    hidden = (torch.ones_like(original[:, :1], dtype=torch.bool) if preview.hidden is None
              else preview.hidden.cpu().bool())
    shown_input = (torch.where(hidden, torch.full_like(original, BLANK_VALUE), original) if preview.model_input is None
                   else normalize.invert(preview.model_input.float().cpu()).clamp(0.0, 1.0))
    return ReconstructionRows(original=original, masked=shown_input,
                              reconstruction=torch.where(hidden, predicted, original), mask=hidden,
                              labels=preview.row_labels)


def plot_reconstruction_grid(rows: ReconstructionRows, path: str | os.PathLike) -> Figure:
    """Three rows (original / the model's input / its prediction: `rows.labels`), one column per image."""
    from matplotlib.figure import Figure

    count = rows.original.shape[0]
    figure = Figure(figsize=(1.1 * count + 0.9, 3.6), layout="constrained")
    grid = figure.subplots(3, count, squeeze=False)
    for row, (name, images) in enumerate(zip(rows.labels, (rows.original, rows.masked, rows.reconstruction))):
        for column in range(count):
            image = images[column].permute(1, 2, 0).numpy()
            axes = grid[row, column]
            if image.shape[-1] == 1:
                axes.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                axes.imshow(image, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(name, fontsize=8)
    figure.savefig(path, dpi=DPI)
    return figure


def _replace_folder(source: Path, target: Path) -> None:
    """Put `source` at `target` with renames only: the old folder moves aside first and is deleted last."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
