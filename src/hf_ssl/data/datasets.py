"""Loading image datasets from the sources users name.

One entry point, :func:`load_image_dataset`, turns a short spec into an :class:`ImageDataset`:

- ``digits``: scikit-learn's 8x8 digits (always available, offline; the default for quick runs and tests),
- ``fashion_mnist``: Fashion-MNIST read from its IDX files (Debian package ``dataset-fashion-mnist``),
- ``imagefolder:PATH``: a folder of images, class subfolders giving labels (``datasets``' imagefolder),
- ``webdataset:FOLDER`` or ``webdataset:PATTERN``: WebDataset tar shards (``datasets``' webdataset builder),
- anything else: a Hub dataset id or a local dataset directory, through ``datasets.load_dataset``.

The built-ins hold their pixels as uint8 ``Array2D`` columns rather than PIL images, so that
:func:`hf_ssl.data.images.images_to_tensor` can convert them in vectorised chunks.
"""

from __future__ import annotations

import difflib
import glob
import gzip
import os
import re
from dataclasses import dataclass

import datasets
import numpy as np
import pyarrow as pa
from datasets.data_files import EmptyDatasetError

from ..errors import HfSslError, first_line

BUILTIN_DATASETS: dict[str, str] = {
    "digits": "scikit-learn's handwritten digits: 1,797 8x8 grayscale images, 10 classes (always available)",
    "fashion_mnist": "Fashion-MNIST: 60,000 + 10,000 28x28 grayscale clothing images, 10 classes "
    "(Debian package dataset-fashion-mnist, or --data_dir)",
    "emoji": "Noto Color Emoji rendered with their Unicode names as captions: about 1,200 image-text pairs, "
    "90/10 train/test (Debian package fonts-noto-color-emoji, or --data_dir holding NotoColorEmoji.ttf)",
}

# The Hub datasets that are the built-in ones, for the `datasets:` entry of a card (digits, emoji and the text
# corpora have no Hub original: they are read from local packages).
HUB_IDS_OF_BUILTIN_DATASETS = {"fashion_mnist": "zalando-datasets/fashion_mnist"}


def hub_dataset_id(name: str) -> str | None:
    """The Hub id of the dataset a card names (a built-in one's original, or a Hub id), None for local data."""
    return HUB_IDS_OF_BUILTIN_DATASETS.get(name, name if "/" in name else None)


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FASHION_MNIST_FILES = {  # split -> (images file, labels file), the names the dataset is distributed under
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGE_COLUMN_NAMES = ("image", "img", "pixel_values")
_LABEL_COLUMN_NAMES = ("label", "labels", "fine_label", "cls")  # cls: WebDataset's convention
_TEXT_COLUMN_NAMES = ("text", "caption", "captions", "sentence", "sentences")


@dataclass
class ImageDataset:
    """An image dataset with its splits and the columns that matter for SSL training and evaluation."""

    name: str  # for model cards: "digits", "fashion_mnist", "imagefolder", "webdataset", or the Hub id / local folder
    splits: dict[str, datasets.Dataset]
    image_column: str
    label_column: str | None  # None when the data has no labels
    class_names: list[str] | None
    train_split: str  # the split to pretrain on
    test_split: str | None  # the split to evaluate on, None if there is none
    text_column: str | None = None  # captions of image-text data (a string, or a list of strings, per image)

    @property
    def streamed(self) -> bool:
        """Its splits are read as they are iterated (`--streaming`): no length, no random access."""
        return isinstance(self.splits[self.train_split], datasets.IterableDataset)


def load_image_dataset(
    spec: str,
    data_dir: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    streaming: bool = False,
) -> ImageDataset:
    """Load the image dataset named by ``spec`` (see the module docstring for the forms it takes).

    ``data_dir`` is where ``fashion_mnist`` looks for its IDX files, the folder for a bare ``imagefolder``
    spec, and ``load_dataset``'s ``data_dir`` (a subfolder of the repository) for Hub datasets.
    ``image_column``/``label_column``/``text_column`` override the automatic detection (captions are looked for
    among string columns named text, caption(s), sentence(s)). Raises :class:`HfSslError` for
    anything the user can fix (unknown name, missing files, unknown column, ...).

    ``streaming``: Hub datasets, local dataset folders and WebDataset shards as ``datasets.IterableDataset`` splits,
    read as they are iterated (the built-ins are in memory, and an image folder's files are read when fetched
    anyway).
    """
    if streaming and (spec in BUILTIN_DATASETS or spec.partition(":")[0] == "imagefolder"):
        raise HfSslError(f"--streaming reads Hub datasets, local dataset folders and WebDataset shards; {spec} is "
                         "read without it (its images are decoded as training fetches them, or held in memory)")
    if spec == "digits":
        if data_dir is not None:
            raise HfSslError("the digits dataset ships with scikit-learn: --data_dir does not apply to it")
        name, splits = "digits", _load_digits()
    elif spec == "fashion_mnist":
        name, splits = "fashion_mnist", _load_fashion_mnist(data_dir or FASHION_MNIST_DIR)
    elif spec == "emoji":
        from .emoji import load_emoji

        name, splits = "emoji", load_emoji(data_dir)
    elif spec.startswith("webdataset:"):
        name, splits = "webdataset", _load_webdataset(spec.partition(":")[2], streaming)
    elif spec == "imagefolder" or spec.startswith("imagefolder:"):
        path = spec.partition(":")[2] or data_dir
        if not path:
            raise HfSslError("imagefolder needs a folder: use imagefolder:PATH")
        name, splits = "imagefolder", _load_imagefolder(path)
    else:
        name, splits = _load_generic(spec, data_dir, streaming)
    return _describe(name, splits, image_column, label_column, text_column)


def _array_dataset(images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> datasets.Dataset:
    """Wrap (N, H, W) uint8 images and int labels as a Dataset with Array2D and ClassLabel columns.

    ``Dataset.from_dict`` routes every pixel through a Python-level cast (about 2 s for Fashion-MNIST's
    60k images on 2 cores); building the Arrow column over the numpy buffer takes about 0.3 s.
    """
    n, h, w = images.shape
    features = datasets.Features(
        {"image": datasets.Array2D(shape=(h, w), dtype="uint8"), "label": datasets.ClassLabel(names=class_names)}
    )
    schema = features.arrow_schema  # carries the features as metadata, so ClassLabel names survive
    pixels = pa.array(np.ascontiguousarray(images).reshape(-1))
    rows = pa.ListArray.from_arrays(pa.array(np.arange(0, n * h * w + 1, w, dtype=np.int32)), pixels)
    images_2d = pa.ListArray.from_arrays(pa.array(np.arange(0, n * h + 1, h, dtype=np.int32)), rows)
    image_type = schema.field("image").type
    column = pa.ExtensionArray.from_storage(image_type, images_2d.cast(image_type.storage_type))
    table = pa.Table.from_arrays([column, pa.array(labels.astype(np.int64))], schema=schema)
    return datasets.Dataset(table)


def _load_digits() -> dict[str, datasets.Dataset]:
    """scikit-learn's digits, 0..16 gray levels scaled to 0..255, split 80/20 stratified with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=0.2, random_state=0, stratify=labels
    )
    names = [str(d) for d in range(10)]
    return {
        "train": _array_dataset(images[train_idx], labels[train_idx], names),
        "test": _array_dataset(images[test_idx], labels[test_idx], names),
    }


def _read_idx(path: str, magic: int, ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzipped or not) and check its header against its size."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise HfSslError(f"cannot read {path}: {e}") from None
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        raise HfSslError(
            f"{path} is not an IDX file of {ndim}-d unsigned bytes (magic number {found}, expected {magic})"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(raw) != header + int(np.prod(dims)):
        raise HfSslError(
            f"{path} is truncated or padded: header says {'x'.join(map(str, dims))}, "
            f"file holds {len(raw) - header} data bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_fashion_mnist(data_dir: str) -> dict[str, datasets.Dataset]:
    """Fashion-MNIST's train (60k) and test (10k) splits from the four IDX files in ``data_dir``."""

    def find(filename: str) -> str | None:  # the files are also often found unpacked
        for candidate in (filename, filename.removesuffix(".gz")):
            if os.path.isfile(os.path.join(data_dir, candidate)):
                return os.path.join(data_dir, candidate)
        return None

    all_files = [f for pair in _FASHION_MNIST_FILES.values() for f in pair]
    if any(find(f) is None for f in all_files):
        raise HfSslError(
            f"Fashion-MNIST not found in {data_dir}: install the Debian package dataset-fashion-mnist or pass "
            f"--data_dir DIR holding {', '.join(all_files)}"
        )
    splits = {}
    for split, (images_file, labels_file) in _FASHION_MNIST_FILES.items():
        images = _read_idx(find(images_file), 2051, 3)
        labels = _read_idx(find(labels_file), 2049, 1)
        if len(images) != len(labels):
            raise HfSslError(
                f"Fashion-MNIST {split} split in {data_dir} has {len(images)} images but {len(labels)} labels"
            )
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise HfSslError(f"Fashion-MNIST {split} labels in {data_dir} go up to {labels.max()}, expected 0..9")
        splits[split] = _array_dataset(images, labels, FASHION_MNIST_CLASSES)
    return splits


def _load_imagefolder(path: str) -> dict[str, datasets.Dataset]:
    """A folder of images via ``datasets``' imagefolder builder (class subfolders, train/ and test/ splits)."""
    if not os.path.isdir(path):
        raise HfSslError(f"image folder {path} does not exist or is not a directory")
    files = imagefolder_files(path)
    if not any(files.values()):
        raise HfSslError(f"image folder {path} holds no image files")
    if not any(os.path.basename(file) in IMAGEFOLDER_METADATA for split in files.values() for file in split):
        return _imagefolder_by_directories(files)
    try:  # captions or other columns in metadata files: the builder joins them with the images
        return dict(datasets.load_dataset("imagefolder", data_files=files))
    except EmptyDatasetError:
        raise HfSslError(f"image folder {path} holds no image files") from None
    except Exception as e:  # anything the builder trips over is a problem with the user's folder
        raise HfSslError(f"cannot load image folder {path}: {first_line(e)}") from None


IMAGEFOLDER_METADATA = ("metadata.csv", "metadata.jsonl", "metadata.parquet")  # the imagefolder builder's names


def _imagefolder_by_directories(files: dict[str, list[str]]) -> dict[str, datasets.Dataset]:
    """The splits of an image folder without metadata files, as the imagefolder builder makes them: an Image column of
    the files, and a ClassLabel column of their directories' names when there are several and every image is at the
    same depth. Built from the file lists directly: the builder resolves every file as a pattern (4 s for 20,000
    images here, minutes for ImageNet's 1.28 million); this takes a tenth of that."""
    images = [file for split in files.values() for file in split]
    classes = {os.path.basename(os.path.dirname(file)) for file in images}
    labelled = len(classes) > 1 and len({len(os.path.normpath(file).split(os.sep)) for file in images}) == 1
    features = datasets.Features({"image": datasets.Image()})
    if labelled:
        features["label"] = datasets.ClassLabel(names=sorted(classes))
    splits = {}
    for split, paths in files.items():
        columns = {"image": [{"path": path, "bytes": None} for path in paths]}
        if labelled:
            index = {name: i for i, name in enumerate(features["label"].names)}
            columns["label"] = [index[os.path.basename(os.path.dirname(path))] for path in paths]
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    return splits


def imagefolder_files(path: str) -> dict[str, list[str]]:
    """The files of an image folder by split, as ``datasets``' imagefolder would find them, in one walk of the folder:
    the image files and metadata files (captions) under a top-level directory named for a split (``train/``,
    ``test/``, ``val/``, ...: `datasets.data_files.SPLIT_KEYWORDS`), or all of them as "train" when there is none.
    Handing the builder these lists skips its own split inference, which walks the whole folder once per pattern it
    tries (66 times: 20 s for 20,000 images here, where this walk takes 0.04 s). Hidden files and folders are
    skipped, as the builder skips them."""
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    wanted_suffixes = {suffix.lower() for suffix in ImageFolder.EXTENSIONS}
    split_of_directory = {keyword: str(split) for split, keywords in datasets.data_files.SPLIT_KEYWORDS.items()
                          for keyword in keywords}
    found: dict[str, list[str]] = {}
    for directory, subdirectories, names in os.walk(path):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith((".", "__")))
        top = os.path.relpath(directory, path).split(os.sep)[0]
        for name in names:
            if not name.startswith(".") and (os.path.splitext(name)[1].lower() in wanted_suffixes
                                             or name in IMAGEFOLDER_METADATA):
                found.setdefault(top, []).append(os.path.join(directory, name))
    split_tops = [top for top in found if top.lower() in split_of_directory]
    if not split_tops:
        return {"train": sorted(file for files in found.values() for file in files)}
    splits: dict[str, list[str]] = {str(split): [] for split in datasets.data_files.SPLIT_KEYWORDS}  # train first
    for top in split_tops:
        splits[split_of_directory[top.lower()]].extend(found[top])
    return {split: sorted(files) for split, files in splits.items() if files}


def _load_webdataset(location: str, streaming: bool = False) -> dict[str, datasets.Dataset]:
    """WebDataset tar shards via ``datasets``' webdataset builder: a folder (splits named by its files: train-*.tar,
    test-*.tar, ...) or a pattern of the train split's shards, with globs or WebDataset's braces
    (``shards/train-{000000..001281}.tar``). Each sample's ``.jpg``/``.png``... member is an image column, its
    ``.cls`` member the label; the images stay encoded in the Arrow cache, decoded when fetched."""
    if not location:
        raise HfSslError("webdataset needs its shards: use webdataset:FOLDER or webdataset:PATTERN (a glob, or "
                         "braces such as shards-{0000..0099}.tar)")
    if os.path.isdir(location):
        kwargs = {"data_dir": location}
    else:
        files = sorted({path for pattern in expand_braces(location) for path in glob.glob(pattern)})
        if not files:
            raise HfSslError(f"no WebDataset shard matches {location}")
        kwargs = {"data_files": {"train": files}}
    try:
        return dict(datasets.load_dataset("webdataset", streaming=streaming, **kwargs))
    except EmptyDatasetError:
        raise HfSslError(f"{location} holds no WebDataset shards (.tar)") from None
    except Exception as e:  # a broken tar, samples without images: the user's data
        raise HfSslError(f"cannot load WebDataset shards {location}: {first_line(e)}") from None


def expand_braces(pattern: str) -> list[str]:
    """WebDataset's shard notation: ``{000..012}`` (a zero-padded numeric range) and ``{a,b}`` (alternatives), as
    many as the pattern holds; ``"s-{0..2}.tar"`` -> ``["s-0.tar", "s-1.tar", "s-2.tar"]``."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        first, last = numeric.groups()
        choices = [str(n).zfill(len(first)) for n in range(int(first), int(last) + 1)]
    else:
        choices = body.split(",")
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for choice in choices for expanded in expand_braces(head + choice + tail)]


def _load_generic(spec: str, data_dir: str | None, streaming: bool = False) -> tuple[str, dict[str, datasets.Dataset]]:
    """A Hub dataset id or a local dataset directory, through the same ``load_dataset`` call."""
    is_local = os.path.exists(spec)
    if "/" not in spec and not is_local:
        # Most likely a mistyped built-in. Asking the Hub first would cost about 30 s of retries when
        # offline, and legacy un-namespaced Hub ids ("mnist") also exist under an owner ("ylecun/mnist").
        close = difflib.get_close_matches(spec, [*BUILTIN_DATASETS, "imagefolder"], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise HfSslError(
            f"unknown dataset '{spec}' ({hint}built-in: {', '.join(BUILTIN_DATASETS)}; "
            f"or imagefolder:PATH, a Hub dataset id)"
        )
    try:
        loaded = datasets.load_dataset(spec, data_dir=data_dir, streaming=streaming)
    except Exception as e:  # not found, offline, gated, bad files: all reported as one line
        raise HfSslError(f"cannot load dataset '{spec}': {first_line(e)}") from None
    name = os.path.basename(os.path.normpath(spec)) if is_local else spec
    return name, dict(loaded)



def _is_image_feature(feature: object) -> bool:
    return isinstance(feature, (datasets.Image, datasets.Array2D, datasets.Array3D))


def _describe(
    name: str, splits: dict[str, datasets.Dataset], image_column: str | None, label_column: str | None,
    text_column: str | None = None,
) -> ImageDataset:
    """Pick the train/test splits and the image/label columns, checking what the user asked for."""
    if not splits:
        raise HfSslError(f"dataset {name} has no splits")
    if "train" in splits:
        train_split = "train"
    elif len(splits) == 1:
        train_split = next(iter(splits))
    else:
        raise HfSslError(f"dataset {name} has no 'train' split (splits: {', '.join(splits)})")
    test_split = next((s for s in ("test", "validation") if s in splits and s != train_split), None)

    features = splits[train_split].features
    if features is None:  # a streamed dataset whose files do not say their columns' types
        raise HfSslError(f"dataset {name} does not declare its columns' types, which streaming needs; load it without "
                         "--streaming")
    columns = list(features)

    def check(column: str) -> None:
        if column not in features:
            raise HfSslError(f"dataset {name} has no column '{column}' (columns: {', '.join(columns)})")

    if image_column is not None:
        check(image_column)
        if not _is_image_feature(features[image_column]):
            raise HfSslError(
                f"column '{image_column}' of dataset {name} holds {features[image_column]}, not images"
            )
    else:
        # By name only among array columns: a string column called "image" (file names, say) is no image.
        found = [c for c in columns if isinstance(features[c], datasets.Image)]
        found += [c for c in columns if c in _IMAGE_COLUMN_NAMES and _is_image_feature(features[c])]
        if not found:
            raise HfSslError(
                f"dataset {name} has no image column (columns: {', '.join(columns)}); name one with --image_column"
            )
        image_column = found[0]

    if label_column is not None:
        check(label_column)
    else:
        found = [c for c in columns if isinstance(features[c], datasets.ClassLabel)]
        found += [c for c in columns if c in _LABEL_COLUMN_NAMES]
        label_column = found[0] if found else None
    label_feature = features[label_column] if label_column is not None else None
    class_names = list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None

    if text_column is not None:
        check(text_column)
        if not _is_text_feature(features[text_column]):
            raise HfSslError(f"column '{text_column}' of dataset {name} holds {features[text_column]}, not text")
    else:
        found = [c for c in columns if c in _TEXT_COLUMN_NAMES and _is_text_feature(features[c])]
        text_column = found[0] if found else None

    return ImageDataset(
        name=name,
        splits=splits,
        image_column=image_column,
        label_column=label_column,
        class_names=class_names,
        train_split=train_split,
        test_split=test_split,
        text_column=text_column,
    )


def _is_text_feature(feature: object) -> bool:
    """A string column, or a list of strings (several captions per image)."""
    if isinstance(feature, datasets.Value):
        return feature.dtype in ("string", "large_string")
    inner = getattr(feature, "feature", None)
    return isinstance(feature, (datasets.List, datasets.LargeList)) and _is_text_feature(inner) if inner else False
