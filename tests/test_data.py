"""Tests for hf_ssl.data: loading datasets from every source form, and images -> uint8 tensors."""

import gzip
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from hf_ssl.data.datasets import FASHION_MNIST_CLASSES, load_image_dataset  # noqa: E402
from hf_ssl.data.images import images_to_tensor, labels_to_tensor  # noqa: E402
from hf_ssl.errors import HfSslError  # noqa: E402


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    """Keep load_dataset's Arrow cache out of the user's ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture(scope="module")
def digits():
    return load_image_dataset("digits")


# ---------------------------------------------------------------- digits


def test_digits_split_is_stratified_and_scaled(digits):
    train, test = digits.splits["train"], digits.splits["test"]
    assert (digits.name, digits.train_split, digits.test_split) == ("digits", "train", "test")
    assert (digits.image_column, digits.label_column) == ("image", "label")
    assert digits.class_names == [str(d) for d in range(10)]
    assert len(train) + len(test) == 1797
    assert len(test) == 360  # 20%, rounded up by train_test_split
    train_labels, test_labels = labels_to_tensor(train, "label"), labels_to_tensor(test, "label")
    assert train_labels.dtype == torch.int64
    assert set(train_labels.tolist()) == set(test_labels.tolist()) == set(range(10))
    # stratified: each class is split 80/20 to within one image (a plain shuffle is off by several)
    n_test, n_train = torch.bincount(test_labels, minlength=10), torch.bincount(train_labels, minlength=10)
    assert ((n_test / (n_test + n_train) - 0.2).abs() < 0.01).all()
    pixels = np.asarray(train.with_format("numpy")[:]["image"])
    assert pixels.shape == (len(train), 8, 8)
    assert pixels.min() == 0 and pixels.max() == 255
    # the split is fixed: a second load gives the same order
    again = load_image_dataset("digits").splits["test"]
    assert torch.equal(labels_to_tensor(again, "label"), test_labels)


def test_digits_resize_matches_pil(digits):
    test = digits.splits["test"]
    x = images_to_tensor(test, "image", image_size=16, num_channels=3, chunk_size=100)  # several chunks
    assert x.shape == (len(test), 3, 16, 16) and x.dtype == torch.uint8
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    originals = np.asarray(test.with_format("numpy")[:]["image"]).astype(np.uint8)
    reference = np.stack([np.asarray(Image.fromarray(a).resize((16, 16), Image.BILINEAR)) for a in originals])
    assert np.abs(x[:, 0].numpy().astype(float) - reference).mean() < 2
    # at the native size nothing is resampled: the pixels come back exactly
    same = images_to_tensor(test, "image", image_size=8, num_channels=1)
    assert np.array_equal(same[:, 0].numpy(), originals)


def test_array_min_size_and_rgb_to_gray(digits):
    with pytest.raises(HfSslError, match="8x8 pixels, smaller than one 16x16 patch"):
        images_to_tensor(digits.splits["test"], "image", image_size=32, num_channels=3, min_size=16)
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    ds = datasets.Dataset.from_dict(
        {"image": rgb}, features=datasets.Features({"image": datasets.Array3D((6, 5, 3), "uint8")})
    )
    gray = images_to_tensor(ds, "image", image_size=6, num_channels=1)  # 6x5 -> 6x6: resized
    reference = np.stack([np.asarray(Image.fromarray(a).convert("L").resize((6, 6), Image.BILINEAR)) for a in rgb])
    assert np.abs(gray[:, 0].numpy().astype(float) - reference).mean() < 2


# ---------------------------------------------------------------- fashion_mnist


def _write_idx(path, magic, array):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _write_fashion_mnist(folder, n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", 2051, images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", 2049, labels)
        data["train" if prefix == "train" else "test"] = (images, labels)
    return data


def test_fashion_mnist_round_trip(tmp_path):
    data = _write_fashion_mnist(tmp_path)
    ds = load_image_dataset("fashion_mnist", data_dir=str(tmp_path))
    assert (ds.name, ds.train_split, ds.test_split, ds.label_column) == ("fashion_mnist", "train", "test", "label")
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.class_names[9] == "Ankle boot"
    for split, (images, labels) in data.items():
        got = ds.splits[split].with_format("numpy")[:]
        assert np.array_equal(np.asarray(got["image"]), images)
        assert labels_to_tensor(ds.splits[split], "label").tolist() == labels.tolist()
    x = images_to_tensor(ds.splits["test"], "image", image_size=28, num_channels=1)
    assert np.array_equal(x[:, 0].numpy(), data["test"][0])
    # shrinking must antialias like PIL (plain bilinear would average only 2x2 of each 4x4 block)
    small = images_to_tensor(ds.splits["test"], "image", image_size=7, num_channels=1)[:, 0].numpy()
    reference = np.stack([np.asarray(Image.fromarray(a).resize((7, 7), Image.BILINEAR)) for a in data["test"][0]])
    assert np.abs(small.astype(float) - reference).mean() < 1


def test_fashion_mnist_missing_or_corrupt(tmp_path):
    with pytest.raises(HfSslError, match="Fashion-MNIST not found in .*dataset-fashion-mnist"):
        load_image_dataset("fashion_mnist", data_dir=str(tmp_path))
    data = _write_fashion_mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2051, data["test"][1])  # labels with the images' magic
    with pytest.raises(HfSslError, match="magic number 2051, expected 2049"):
        load_image_dataset("fashion_mnist", data_dir=str(tmp_path))
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:  # header claims 3 labels, holds 2
        f.write((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(HfSslError, match="truncated"):
        load_image_dataset("fashion_mnist", data_dir=str(tmp_path))


# ---------------------------------------------------------------- imagefolder


def _image_folder(root):
    """Two classes, four modes, four sizes. Returns the folder."""
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (10, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(root / "cat" / "rgb.png")
    rgba = Image.new("RGBA", (9, 14), (10, 200, 30, 255))  # opaque everywhere...
    rgba.save(root / "cat" / "rgba_opaque.png")
    rgba.paste((0, 0, 0, 0), (0, 0, 4, 14))  # ...and one with a transparent stripe (white at inference)
    rgba.save(root / "cat" / "rgba_stripe.png")
    gray = np.random.default_rng(1).integers(0, 256, (9, 7), dtype=np.uint8)
    Image.fromarray(gray, "L").save(root / "dog" / "gray.png")
    Image.fromarray(rgb, "RGB").quantize(colors=16).save(root / "dog" / "palette.png")
    return root


def _by_file(ds, split, column):
    paths = ds.splits[split].cast_column(column, datasets.Image(decode=False))[column]
    return {os.path.basename(v["path"]): i for i, v in enumerate(paths)}


def test_imagefolder_modes_match_the_inference_processor(tmp_path):
    from transformers import ViTImageProcessor

    ds = load_image_dataset(f"imagefolder:{_image_folder(tmp_path / 'imgs')}")
    assert (ds.name, ds.image_column, ds.label_column, ds.test_split) == ("imagefolder", "image", "label", None)
    assert ds.class_names == ["cat", "dog"]
    train = ds.splits["train"]
    x = images_to_tensor(train, "image", image_size=12, num_channels=3, min_size=4)
    assert x.shape == (5, 3, 12, 12) and x.dtype == torch.uint8
    where = _by_file(ds, "train", "image")
    assert (x[where["rgba_opaque.png"]] == torch.tensor([10, 200, 30]).view(3, 1, 1)).all()
    gray = x[where["gray.png"]]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[0], gray[2])
    # exactly what the model will be given at inference (rescale/normalize off to compare raw pixels)
    processor = ViTImageProcessor(
        do_convert_rgb=True, size={"height": 12, "width": 12}, resample=Image.BILINEAR,
        do_rescale=False, do_normalize=False,
    )  # fmt: skip
    expected = processor(list(train["image"]), return_tensors="pt")["pixel_values"]
    assert torch.equal(x.float(), expected.float().round())
    assert (x[where["rgba_stripe.png"], :, :, 0] == 255).all()  # transparent -> white, not black
    one = images_to_tensor(train, "image", image_size=12, num_channels=1)
    assert one.shape == (5, 1, 12, 12) and torch.equal(one[where["gray.png"], 0], gray[0])


def test_image_files_decoded_when_fetched_equal_the_in_memory_pixels_and_name_a_bad_file(tmp_path):
    """Training on image files decodes each image when its batch is fetched (`ImageFileDataset`): the pixels are the
    in-memory path's, bit for bit, in RGB and grayscale; a file that cannot be read, found by a DataLoader worker,
    is one line naming it (not the traceback torch wraps a worker's error in)."""
    from torch.utils.data import DataLoader

    from hf_ssl.data.images import ImageFileDataset
    from hf_ssl.errors import user_message

    train = load_image_dataset(f"imagefolder:{_image_folder(tmp_path / 'imgs')}").splits["train"]
    for channels in (3, 1):
        lazy = ImageFileDataset(train, "image", image_size=12, num_channels=channels, min_size=4)
        in_memory = images_to_tensor(train, "image", image_size=12, num_channels=channels, min_size=4)
        assert len(lazy) == len(in_memory)
        assert all(torch.equal(lazy[i]["pixel_values"], in_memory[i]) for i in range(len(lazy)))

    bad = _image_folder(tmp_path / "bad")
    (bad / "dog" / "broken.png").write_bytes(np.random.default_rng(2).bytes(300))
    lazy = ImageFileDataset(load_image_dataset(f"imagefolder:{bad}").splits["train"], "image", 12, 3)
    with pytest.raises(HfSslError) as raised:
        list(DataLoader(lazy, batch_size=len(lazy), num_workers=1))
    assert "Traceback" in str(raised.value)  # torch's wrapping, which the CLI unwraps
    message = user_message(raised.value)
    assert message.startswith("cannot read image ") and "broken.png" in message and "\n" not in message


def _webdataset_shard(path, first: int, count: int) -> None:
    """A WebDataset tar: samples KEY.png (a gray image of level 10 x its number) and KEY.cls (its number mod 3)."""
    import io
    import tarfile

    with tarfile.open(path, "w") as tar:
        for n in range(first, first + count):
            png = io.BytesIO()
            Image.new("L", (6, 6), 10 * n).save(png, "PNG")
            for suffix, payload in (("png", png.getvalue()), ("cls", str(n % 3).encode())):
                member = tarfile.TarInfo(f"sample{n:04d}.{suffix}")
                member.size = len(payload)
                tar.addfile(member, io.BytesIO(payload))


def test_webdataset_shards_from_a_folder_or_a_brace_pattern(tmp_path):
    from hf_ssl.data.datasets import expand_braces

    assert expand_braces("s-{08..10}-{a,b}.tar") == ["s-08-a.tar", "s-08-b.tar", "s-09-a.tar", "s-09-b.tar",
                                                     "s-10-a.tar", "s-10-b.tar"]
    _webdataset_shard(tmp_path / "train-0000.tar", 0, 4)
    _webdataset_shard(tmp_path / "train-0001.tar", 4, 3)
    _webdataset_shard(tmp_path / "test-0000.tar", 7, 2)
    ds = load_image_dataset(f"webdataset:{tmp_path}")
    assert (ds.name, ds.image_column, ds.label_column, ds.train_split, ds.test_split) == (
        "webdataset", "png", "cls", "train", "test")
    pixels = images_to_tensor(ds.splits["train"], "png", image_size=6, num_channels=1)
    levels = sorted(pixels[:, 0, 0, 0].tolist())
    assert levels == [10 * n for n in range(7)]
    labels = labels_to_tensor(ds.splits["train"], "cls")
    assert sorted(zip(pixels[:, 0, 0, 0].tolist(), labels.tolist())) == [(10 * n, n % 3) for n in range(7)]
    only_train = load_image_dataset(f"webdataset:{tmp_path}/train-{{0000..0001}}.tar")
    assert list(only_train.splits) == ["train"] and len(only_train.splits["train"]) == 7
    with pytest.raises(HfSslError, match="no WebDataset shard matches"):
        load_image_dataset(f"webdataset:{tmp_path}/train-{{0002..0003}}.tar")


def test_imagefolder_splits_and_errors(tmp_path):
    root = tmp_path / "split"
    for split in ("train", "test"):
        _image_folder(root / split)
    ds = load_image_dataset("imagefolder:" + str(root))
    assert (ds.train_split, ds.test_split) == ("train", "test") and len(ds.splits["test"]) == 5

    bad = _image_folder(tmp_path / "bad")
    (bad / "dog" / "broken.png").write_bytes(np.random.default_rng(2).bytes(300))
    Image.new("RGB", (3, 5)).save(bad / "dog" / "tiny.png")
    undecoded = load_image_dataset(f"imagefolder:{bad}").splits["train"].cast_column(
        "image", datasets.Image(decode=False)  # so that filtering does not decode the broken file
    )
    without_tiny = undecoded.filter(lambda v: "tiny" not in v["path"], input_columns="image")
    with pytest.raises(HfSslError, match=r"cannot read image .*broken\.png"):
        images_to_tensor(without_tiny, "image", image_size=8, num_channels=3)
    without_broken = undecoded.filter(lambda v: "broken" not in v["path"], input_columns="image")
    with pytest.raises(HfSslError, match=r"image .*tiny\.png is 3x5 pixels, smaller than one 4x4 patch"):
        images_to_tensor(without_broken, "image", image_size=8, num_channels=3, min_size=4)

    with pytest.raises(HfSslError, match="does not exist"):
        load_image_dataset(f"imagefolder:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HfSslError, match="holds no image files"):
        load_image_dataset(f"imagefolder:{tmp_path / 'empty'}")


# ---------------------------------------------------------------- Hub-layout local dataset and errors


def _hub_layout(root, splits, features, columns):
    (root / "data").mkdir(parents=True)
    for split, n in splits.items():
        rows = {name: make(n) for name, make in columns.items()}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(root / "data" / f"{split}-00000-of-00001.parquet")
        )
    return root


def test_local_hub_layout_dataset(tmp_path):
    features = datasets.Features(
        {"caption": datasets.Value("string"), "img": datasets.Image(),
         "fine_label": datasets.ClassLabel(names=["a", "b", "c"])}
    )  # fmt: skip
    columns = {
        "caption": lambda n: [f"picture {i}" for i in range(n)],
        "img": lambda n: [Image.new("RGB", (6, 6), (i * 40, 0, 0)) for i in range(n)],
        "fine_label": lambda n: [i % 3 for i in range(n)],
    }
    root = _hub_layout(tmp_path / "my_set", {"train": 6, "test": 3}, features, columns)
    ds = load_image_dataset(str(root))
    assert ds.name == "my_set"
    assert (ds.image_column, ds.label_column, ds.class_names) == ("img", "fine_label", ["a", "b", "c"])
    assert (ds.train_split, ds.test_split) == ("train", "test")
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 6, "test": 3}
    x = images_to_tensor(ds.splits["train"], "img", image_size=6, num_channels=3)  # bytes stored in parquet
    assert x[:, 0, 0, 0].tolist() == [i * 40 for i in range(6)] and x[:, 1:].max() == 0
    with pytest.raises(HfSslError, match=r"has no column 'foo' \(columns: caption, img, fine_label\)"):
        load_image_dataset(str(root), image_column="foo")
    with pytest.raises(HfSslError, match="column 'caption' .* not images"):
        load_image_dataset(str(root), image_column="caption")


def test_plain_int_labels_and_validation_split(tmp_path):
    features = datasets.Features({"picture": datasets.Image(), "label": datasets.Value("int64")})
    columns = {"picture": lambda n: [Image.new("L", (4, 4))] * n, "label": lambda n: list(range(n))}
    root = _hub_layout(tmp_path / "plain", {"train": 4, "validation": 2}, features, columns)
    ds = load_image_dataset(str(root))
    assert (ds.image_column, ds.label_column, ds.class_names) == ("picture", "label", None)
    assert (ds.train_split, ds.test_split) == ("train", "validation")
    assert labels_to_tensor(ds.splits["validation"], "label").tolist() == [0, 1]
    text_only = datasets.Features({"image": datasets.Value("string")})  # file names are not images
    root = _hub_layout(tmp_path / "text", {"train": 2}, text_only, {"image": lambda n: ["a.png"] * n})
    with pytest.raises(HfSslError, match=r"has no image column \(columns: image\)"):
        load_image_dataset(str(root))


def test_unknown_names_fail_in_one_line():
    with pytest.raises(HfSslError, match=r"unknown dataset 'digitz' \(did you mean 'digits'\? built-in: digits"):
        load_image_dataset("digitz")
    with pytest.raises(HfSslError, match="cannot load dataset 'nobody/no-such-set'") as info:
        load_image_dataset("nobody/no-such-set")
    assert "\n" not in str(info.value)
