import os
import subprocess
import sys
import textwrap

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist, each worker (and every process it starts) gets its share of the cores: torch's default of
# one thread per core in every worker would oversubscribe them. Set before anything imports torch.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

# Put at the top of a script run in a fresh process: hf_ssl cannot be imported there, as on the machine
# of a user who only has transformers.
BLOCK_HF_SSL = "import sys\nsys.modules['hf_ssl'] = None\n"


def run_python(code: str, timeout: int = 300, block_hf_ssl: bool = True) -> subprocess.CompletedProcess:
    script = (BLOCK_HF_SSL if block_hf_ssl else "") + textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"fresh process failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def run_cli(*args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hf_ssl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_no_local_paths(out, *local_paths) -> None:
    """No file of the Hub-ready folder OUT (`checkpoints/` is never published) contains a local path: the run's own
    folders (`local_paths`, e.g. the temporary folder a test trains in, a tokenizer or checkpoint it started from)
    or the home folder."""
    from pathlib import Path

    needles = {str(Path(p).resolve()).encode() for p in local_paths} | {os.path.expanduser("~").encode() + b"/"}
    files = [f for f in Path(out).rglob("*") if f.is_file() and "checkpoints" not in f.relative_to(out).parts]
    assert len(files) > 3, files
    for file in files:
        content = file.read_bytes()
        leaked = [needle.decode() for needle in needles if needle in content]
        assert not leaked, f"{file.relative_to(out)} contains the local path {leaked[0]}"


@pytest.fixture(scope="session")
def pretrained_out(tmp_path_factory):
    """One tiny MAE pretraining on digits shared by the export tests (6 steps, checkpoint every 3)."""
    out = tmp_path_factory.mktemp("runs") / "mae-digits"
    result = run_cli("pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "6", "--save_steps", "3", "--seed", "0",
                     "--logging_steps", "1", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    return out, result


def step_done(model, progress: float) -> None:
    """What the training loop does after an optimizer step (`OptimizerStepCallback`): the model's per-step hook, then
    the next position in training, one step further."""
    model.optimizer_step_done(int(model.num_optimizer_steps) + 1, progress)


def tiny_backbone_config(backbone: str = "resnet-test", image_size: int = 16):
    """The test backbones at `image_size` px (ViTs with 4 px patches)."""
    from hf_ssl.nn.backbone_presets import backbone_config_from_spec

    overrides = dict(image_size=image_size, patch_size=4) if backbone.startswith("vit") else dict(image_size=image_size)
    return backbone_config_from_spec(backbone, **overrides)[0]


def joint_embedding_methods() -> list[str]:
    """Every registered method built on JointEmbeddingConfig."""
    from hf_ssl.modeling.joint_embedding import JointEmbeddingConfig
    from hf_ssl.registry import METHODS

    return sorted(name for name, m in METHODS.items() if issubclass(m.config_class, JointEmbeddingConfig))


def primed_eval_model(model_class, config, image_size: int = 16):
    """A model in eval mode whose BatchNorm running statistics are those of one random two-view batch (momentum 1),
    so that its embeddings are centred and spread out (with the initial statistics they are nearly parallel and a
    loss hardly depends on which views are paired). Eval mode: encoding views together or apart must agree."""
    import torch

    torch.manual_seed(0)
    model = model_class(config)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 2, 3, image_size, image_size))
    return model.eval()


def random_crops(batch: int = 6, num_local: int = 2, global_size: int = 16, local_size: int = 8, seed: int = 0):
    """Multi-crop model inputs: 2 global crops in `pixel_values`, `num_local` local ones in `local_pixel_values`."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    views = {"pixel_values": torch.randn(batch, 2, 3, global_size, global_size, generator=generator)}
    if num_local:
        views["local_pixel_values"] = torch.randn(batch, num_local, 3, local_size, local_size, generator=generator)
    return views


SHAPE_CLASSES = ("circle", "cross", "square")  # class names of `shape_images`, sorted as imagefolder sorts them


def shape_images(root, per_split: dict[str, int], size: int = 16, seed: int = 0):
    """An imagefolder dataset of small named classes (`SHAPE_CLASSES`: class subfolders of `root/<split>/`), each
    image its shape at a random position and grey level on a noisy background: real class names for the
    semi-supervised tests, in a second."""
    from pathlib import Path

    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in per_split.items():
        for name in SHAPE_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                background = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                image = Image.fromarray(background)
                draw = ImageDraw.Draw(image)
                x, y = rng.integers(1, size // 3, 2)
                w = int(rng.integers(size // 2, size - max(x, y) - 1))
                shade = tuple(int(v) for v in rng.integers(150, 256, 3))
                if name == "circle":
                    draw.ellipse([x, y, x + w, y + w], outline=shade, width=2)
                elif name == "square":
                    draw.rectangle([x, y, x + w, y + w], outline=shade, width=2)
                else:
                    draw.line([x, y, x + w, y + w], fill=shade, width=2)
                    draw.line([x, y + w, x + w, y], fill=shade, width=2)
                image.save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def semi_supervised_run(tmp_path_factory):
    """One tiny semi-supervised run shared by the semi-supervised tests (the export, the card, the record): Pseudo-Label
    with 4 labels per class of `shape_images` (10 train and 4 test images per class), threshold 0 so that the monitor
    has pseudo-labels to judge, 4 steps. Returns (OUT, the dataset folder, the finished process)."""
    root = tmp_path_factory.mktemp("semi-supervised")
    data = shape_images(root / "shapes", {"train": 10, "test": 4})
    out = root / "pseudo-label-shapes"
    result = run_cli("pretrain", "--method", "pseudo_label", "--preset", "tiny", "--dataset", f"imagefolder:{data}",
                     "--labels_per_class", "4", "--threshold", "0", "--max_steps", "4", "--logging_steps", "1",
                     "--seed", "0", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    return out, data, result


def gray_level_shards(root, count: int, shards: int, test_count: int = 0):
    """A local dataset folder of Parquet shards (`data/train-0000K-of-0000N.parquet`, as the Hub lays them out) of
    `count` 8x8 gray PNGs, image i of level 10 * i (so an image's pixels say which it is), label i mod 3; and a test
    shard of `test_count` more. For the streaming tests."""
    import io
    from pathlib import Path

    import datasets
    from PIL import Image

    def images(first: int, n: int) -> datasets.Dataset:
        rows = []
        for i in range(first, first + n):
            png = io.BytesIO()
            Image.new("L", (8, 8), 10 * i).save(png, "PNG")
            rows.append({"image": {"bytes": png.getvalue(), "path": None}, "label": i % 3})
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
        return datasets.Dataset.from_list(rows, features=features)

    root = Path(root)
    (root / "data").mkdir(parents=True)
    train = images(0, count)
    for k in range(shards):
        train.shard(shards, k, contiguous=True).to_parquet(root / "data" / f"train-{k:05d}-of-{shards:05d}.parquet")
    if test_count:
        images(count, test_count).to_parquet(root / "data" / "test-00000-of-00001.parquet")
    return root
