"""Turning a dataset's image column into one uint8 tensor at the model's size.

The result must be what the exported model sees at inference, where transformers'
``ViTImageProcessor(do_convert_rgb=True, size=(S, S), resample=BILINEAR)`` prepares images: every image
is resized to SxS (bilinear, aspect ratio not kept) and converted to RGB, transparency composited onto
white as transformers' ``convert_to_rgb`` does (for 1-channel models: the same, then PIL's "L").

Two paths: uint8 array columns (the built-ins) are converted in vectorised chunks with torch; image
file columns are decoded one by one with PIL, so that a bad file can be named in the error. Training on image
files decodes each image when it is fetched instead (`ImageFileDataset`), with the same code (`decode_image`).
"""

from __future__ import annotations

import io

import datasets
import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
import torch.nn.functional as F

from ..errors import HfSslError

# PIL's ITU-R 601-2 luma weights for RGB -> "L"
_LUMA = torch.tensor([299.0, 587.0, 114.0]) / 1000.0


def images_to_tensor(
    dataset: datasets.Dataset,
    column: str,
    image_size: int,
    num_channels: int,
    min_size: int = 1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """All images of ``dataset[column]`` as a uint8 tensor (N, num_channels, image_size, image_size).

    ``num_channels`` is 3 (RGB) or 1 (grayscale). ``min_size`` is the caller's patch size: an image whose
    smaller side (before resizing) is below it raises :class:`HfSslError`, as does an unreadable file.
    """
    if num_channels not in (1, 3):
        raise HfSslError(f"num_channels must be 1 or 3, got {num_channels}")
    if column not in dataset.features:
        raise HfSslError(f"dataset has no column '{column}' (columns: {', '.join(dataset.features)})")
    feature = dataset.features[column]
    out = torch.empty((len(dataset), num_channels, image_size, image_size), dtype=torch.uint8)
    if isinstance(feature, (datasets.Array2D, datasets.Array3D)):
        _arrays_into(out, dataset, column, feature, min_size, chunk_size)
    elif isinstance(feature, datasets.Image):
        _files_into(out, dataset, column, feature, min_size, chunk_size)
    else:
        raise HfSslError(f"column '{column}' holds {feature}, not images")
    return out


def labels_to_tensor(dataset: datasets.Dataset, column: str) -> torch.Tensor:
    """The integer class ids of ``dataset[column]`` as an int64 tensor."""
    if column not in dataset.features:
        raise HfSslError(f"dataset has no column '{column}' (columns: {', '.join(dataset.features)})")
    values = np.asarray(dataset.with_format("numpy", columns=[column])[:][column])
    if not np.issubdtype(values.dtype, np.integer):
        raise HfSslError(
            f"label column '{column}' holds {dataset.features[column]}, not integer class ids "
            "(datasets' class_encode_column converts string labels)"
        )
    return torch.from_numpy(values.astype(np.int64))


def _arrays_into(
    out: torch.Tensor,
    dataset: datasets.Dataset,
    column: str,
    feature: datasets.Array2D | datasets.Array3D,
    min_size: int,
    chunk_size: int,
) -> None:
    """Fill ``out`` from a uint8 Array2D (H, W) or Array3D (H, W, C) column, a chunk at a time."""
    if feature.dtype != "uint8":
        raise HfSslError(f"column '{column}' holds {feature.dtype} arrays; expected uint8 pixels (0..255)")
    shape = tuple(feature.shape)
    channels_first = len(shape) == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4)
    if len(shape) == 2:
        (height, width), channels = shape, 1
    elif channels_first:
        channels, height, width = shape
    else:
        height, width, channels = shape
    if channels not in (1, 3, 4):
        raise HfSslError(f"column '{column}' holds arrays of shape {shape}: expected 1, 3 or 4 channels")
    # The arrays share one shape, so the size check is done once, for the whole dataset.
    if min(height, width) < min_size:
        raise HfSslError(
            f"images in column '{column}' are {width}x{height} pixels, smaller than one {min_size}x{min_size} patch"
        )
    size = out.shape[-1]
    view = dataset.with_format("numpy", columns=[column])
    for start in range(0, len(dataset), chunk_size):
        # The numpy formatter widens to int64; back to uint8 at once, which makes the float
        # conversion below (or the plain copy when nothing needs computing) several times cheaper.
        x = torch.from_numpy(np.asarray(view[start : start + chunk_size][column], dtype=np.uint8))
        if channels_first:
            x = x.reshape(len(x), channels, height, width)
        else:
            x = x.reshape(len(x), height, width, channels).permute(0, 3, 1, 2)
        to_gray = channels != 1 and out.shape[1] == 1
        if channels == 4 or to_gray or (height, width) != (size, size):
            x = x.float()
            if channels == 4:  # composite onto white, like transformers' convert_to_rgb
                alpha = x[:, 3:4] / 255.0
                x = alpha * x[:, :3] + (1.0 - alpha) * 255.0
            if to_gray:
                x = (x * _LUMA.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
            if (height, width) != (size, size):
                # Antialiasing matches PIL when shrinking; when enlarging it changes nothing but costs
                # about 40% more time, so it is only switched on for a shrinking side.
                antialias = size < max(height, width)
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=antialias, align_corners=False)
            # Every step above is a convex combination of 0..255 values (bilinear weights are >= 0),
            # so rounding is all that is needed, no clamping.
            x = x.round_().to(torch.uint8)
        # A single gray channel broadcasts to RGB in the assignment: resizing it once is enough.
        out[start : start + len(x)] = x


def _files_into(
    out: torch.Tensor,
    dataset: datasets.Dataset,
    column: str,
    feature: datasets.Image,
    min_size: int,
    chunk_size: int,
) -> None:
    """Fill ``out`` from an Image column, decoding each file ourselves so errors can name it."""
    raw = undecoded(dataset, column)
    size = out.shape[-1]
    mode = "RGB" if out.shape[1] == 3 else "L"
    for start in range(0, len(raw), chunk_size):
        for offset, value in enumerate(raw[start : start + chunk_size][column]):
            out[start + offset] = decode_image(value, feature.mode, size, mode, min_size, start + offset)


def undecoded(dataset: datasets.Dataset, column: str) -> datasets.Dataset:
    """``dataset``'s image column alone, as ``{"path", "bytes"}`` values that `decode_image` reads."""
    return dataset.select_columns([column]).cast_column(column, datasets.Image(decode=False))


def decode_image(value: dict | None, feature_mode: str | None, size: int, mode: str, min_size: int,
                 index: int) -> torch.Tensor:
    """One undecoded image value as a uint8 (C, size, size) tensor, C = 3 for ``mode`` "RGB", 1 for "L": decoded,
    oriented and converted as a viewer shows it, then resized (bilinear) as the exported processor does. An
    unreadable file, or one smaller than ``min_size`` (a patch), raises :class:`HfSslError` naming it (or its row
    ``index`` when it is no file)."""
    name = (value or {}).get("path") or (f"#{index}" if index >= 0 else "(a streamed example)")
    try:
        image = _decode(value, feature_mode)
    except Exception as e:  # whatever PIL trips over, the file is what the user must fix
        raise HfSslError(f"cannot read image {name}: {e}") from None
    if min(image.size) < min_size:
        raise HfSslError(
            f"image {name} is {image.width}x{image.height} pixels, smaller than one {min_size}x{min_size} patch"
        )
    image = _convert(image, mode)
    if image.size != (size, size):
        image = image.resize((size, size), PIL.Image.BILINEAR)
    pixels = torch.from_numpy(np.array(image))  # a writable copy
    return pixels.permute(2, 0, 1) if mode == "RGB" else pixels.unsqueeze(0)


# Examples a streamed dataset is shuffled among (`datasets.IterableDataset.shuffle`, with its shards' order): the
# usual size for image streams (WebDataset's examples use 1,000-10,000); a few hundred MB of encoded images at most.
STREAM_SHUFFLE_BUFFER = 10_000


def stream_images(split: datasets.IterableDataset, column: str, image_size: int, num_channels: int,
                  min_size: int = 1, seed: int = 0) -> datasets.IterableDataset:
    """A streamed split as `{"pixel_values": uint8 (C, S, S)}` examples, shuffled in a buffer of
    `STREAM_SHUFFLE_BUFFER` examples (and by shard) from `seed`, each image decoded as it is read (`decode_image`).
    Still a `datasets.IterableDataset`: accelerate gives each process of a multi-process run its own shards, and
    `datasets` each DataLoader worker its own share of those."""
    decode = ImageDecoder(split.features, column, image_size, num_channels, min_size)
    return undecoded(split, column).shuffle(seed=seed, buffer_size=STREAM_SHUFFLE_BUFFER).map(
        decode.example, remove_columns=[column])


class ImageDecoder:
    """`decode_image` with a column's settings: what `ImageFileDataset` and `stream_images` call on each undecoded
    value (an object, so that it pickles into DataLoader workers)."""

    def __init__(self, features: datasets.Features, column: str, image_size: int, num_channels: int,
                 min_size: int = 1):
        if num_channels not in (1, 3):
            raise HfSslError(f"num_channels must be 1 or 3, got {num_channels}")
        if not isinstance(features.get(column), datasets.Image):
            raise HfSslError(f"column '{column}' holds {features.get(column)}, not encoded images")
        self.column, self.feature_mode = column, features[column].mode
        self.image_size, self.min_size = image_size, min_size
        self.mode = "RGB" if num_channels == 3 else "L"

    def __call__(self, value: dict | None, index: int = -1) -> torch.Tensor:
        return decode_image(value, self.feature_mode, self.image_size, self.mode, self.min_size, index)

    def example(self, row: dict) -> dict[str, torch.Tensor]:
        """A row of the undecoded column as a training example."""
        return {"pixel_values": self(row[self.column])}


class ImageFileDataset(torch.utils.data.Dataset):
    """The images of an Image column (files, or encoded bytes in Arrow/Parquet) as a map-style dataset of
    ``{"pixel_values": uint8 (C, S, S)}`` examples, each decoded when it is fetched: what the training of a dataset
    of image files reads, so that neither memory nor start-up time grows with the dataset (a DataLoader worker
    decodes while the step runs). The Arrow table behind it is memory-mapped, and pickles as its file names: a
    worker re-opens it instead of copying it."""

    def __init__(self, dataset: datasets.Dataset, column: str, image_size: int, num_channels: int,
                 min_size: int = 1):
        self.decode = ImageDecoder(dataset.features, column, image_size, num_channels, min_size)
        self.rows = undecoded(dataset, column)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.decode(self.rows[int(index)][self.decode.column], int(index))}


def _decode(value: dict | None, feature_mode: str | None) -> PIL.Image.Image:
    """Open an undecoded ``{"path", "bytes"}`` value the way ``datasets.Image.decode_example`` does."""
    if value is None:
        raise ValueError("the value is missing (None)")
    if value.get("bytes") is not None:
        image = PIL.Image.open(io.BytesIO(value["bytes"]))
    elif value.get("path"):
        image = PIL.Image.open(value["path"])
    else:
        raise ValueError("neither a path nor bytes")
    image.load()  # decode now, so a truncated file fails here and not in resize
    if image.getexif().get(PIL.Image.ExifTags.Base.Orientation) is not None:
        image = PIL.ImageOps.exif_transpose(image)
    if feature_mode and feature_mode != image.mode:
        image = image.convert(feature_mode)
    return image


def _convert(image: PIL.Image.Image, mode: str) -> PIL.Image.Image:
    """RGB (or L) the way transformers' ``convert_to_rgb`` does: transparency is composited onto white. 16-bit
    grayscale (PNG, TIFF: PIL modes I;16 and I) is scaled to 8 bits; PIL's own conversion clips it at 255, which
    turns a 16-bit image white."""
    if image.mode.startswith("I;16") or image.mode == "I":
        scaled = np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        image = PIL.Image.fromarray(scaled, "L")
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        image = image.convert("RGBA")
        image = PIL.Image.alpha_composite(PIL.Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
    return image.convert(mode)
