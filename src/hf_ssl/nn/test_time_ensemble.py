"""Data distillation's ensemble over input transformations (Radosavovic, Dollar, Girshick, Gkioxari, He, "Data
Distillation: Towards Omni-Supervised Learning", CVPR 2018, Sec. 3).

Data distillation runs one model on several geometric transformations of an unlabelled image (the paper: scales and
horizontal flips) and aggregates the predictions into a pseudo-label that is better than any single one; a student
then trains on these labels. For keypoints and boxes the paper maps each prediction back through the inverse
transformation before aggregating. Class labels are invariant to these transformations (a flipped or rescaled shirt is
still a shirt), so here no inverse is needed: the ensemble is the mean of the softmax outputs over the transforms,

    p(x) = (1 / T) sum_t softmax(predict(t(x))).

Every transform keeps the input size, so a classifier with a fixed input size (ViT's position embeddings) takes each
one as it is. Transforms are named, and composed left to right with "+":

- "identity"; "hflip": mirror left-right.
- "scale_<s>": the image rescaled by s. s > 1 upsamples then takes the centre crop of the input size (zoom in); s < 1
  downsamples (antialiased) then resizes back, so the model sees the image at s of its resolution, as a multi-scale
  test would at a smaller input (the content is not moved, the classifier's input size stays fixed).
- "crop_<f>_<position>": a crop of f of the height and width at position c (centre), tl, tr, bl or br, resized to the
  input size.

The default is the paper's grid of {no flip, flip} x {scale 1, 0.8, 1.2}. These transforms only move and resample
pixels (no fill value), so they commute with per-channel normalisation and apply to normalised pixel values as well as
to [0, 1] images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

DEFAULT_TRANSFORMS = ("identity", "hflip", "scale_0.8", "scale_1.2", "hflip+scale_0.8", "hflip+scale_1.2")
CROP_POSITIONS = ("c", "tl", "tr", "bl", "br")


def _resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize; antialiased when shrinking, so a downscale averages pixels instead of skipping them."""
    if (height, width) == tuple(images.shape[-2:]):
        return images
    shrinking = height < images.shape[-2] or width < images.shape[-1]
    return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)


def _crop(images: torch.Tensor, height: int, width: int, position: str) -> torch.Tensor:
    """A (height, width) window at `position` (c, tl, tr, bl, br); the centre is rounded down to the top-left."""
    full_height, full_width = images.shape[-2:]
    top = {"c": (full_height - height) // 2, "t": 0, "b": full_height - height}[position[0]]
    left = {"c": (full_width - width) // 2, "l": 0, "r": full_width - width}[position[-1]]
    return images[..., top:top + height, left:left + width]


def _apply_one(name: str, images: torch.Tensor) -> torch.Tensor:
    height, width = images.shape[-2:]
    if name == "identity":
        return images
    if name == "hflip":
        return images.flip(-1)
    if name.startswith("scale_"):
        scale = float(name[len("scale_"):])
        if scale <= 0:
            raise ValueError(f"test-time transform {name!r}: the scale must be > 0")
        scaled = _resize(images, max(1, round(scale * height)), max(1, round(scale * width)))
        if scale >= 1:
            return _crop(scaled, height, width, "c")
        return _resize(scaled, height, width)
    if name.startswith("crop_"):
        fraction, _, position = name[len("crop_"):].partition("_")
        fraction_value = float(fraction)
        if not 0 < fraction_value <= 1 or position not in CROP_POSITIONS:
            raise ValueError(f"test-time transform {name!r}: expected crop_<f in (0, 1]>_<{'|'.join(CROP_POSITIONS)}>")
        crop = _crop(images, max(1, round(fraction_value * height)), max(1, round(fraction_value * width)), position)
        return _resize(crop, height, width)
    raise ValueError(f"unknown test-time transform {name!r}: expected identity, hflip, scale_<s>, "
                     f"crop_<f>_<position>, or several joined by '+'")


def apply_transform(name: str, pixel_values: torch.Tensor) -> torch.Tensor:
    """The named transform (several joined by "+" are applied left to right) of a (N, C, H, W) batch, same shape."""
    out = pixel_values
    for part in name.split("+"):
        out = _apply_one(part.strip(), out)
    return out


def ensemble_probabilities(
    predict: Callable[[torch.Tensor], torch.Tensor], pixel_values: torch.Tensor,
    transforms: Sequence[str] = DEFAULT_TRANSFORMS,
) -> torch.Tensor:
    """(N, C) mean over `transforms` of softmax(predict(t(pixel_values))): data distillation's pseudo-label
    distribution (its argmax is the hard pseudo-label, its max the confidence a selection rule reads).

    `predict` maps (N, C, H, W) pixel values to (N, num_classes) logits, e.g. a frozen teacher's `logits`. One call per
    transform (not one call on the concatenation), so BatchNorm statistics in train mode and peak memory are those of
    a single batch. Runs in the caller's grad mode: wrap it in `torch.no_grad()` for pseudo-labels.
    """
    if not transforms:
        raise ValueError("ensemble_probabilities: at least one transform is needed")
    total = None
    for name in transforms:
        logits = predict(apply_transform(name, pixel_values))
        # averaged in at least float32: half-precision probabilities lose the small differences a confidence rule reads
        probs = F.softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))
        total = probs if total is None else total + probs
    return total / len(transforms)


__all__ = ["CROP_POSITIONS", "DEFAULT_TRANSFORMS", "apply_transform", "ensemble_probabilities"]
