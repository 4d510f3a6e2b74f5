"""FixMatch's strong augmentation: RandAugment with a random magnitude, then Cutout (Sohn et al., "FixMatch",
NeurIPS 2020, Sec. 2.3 and Table 12; RandAugment: Cubuk et al., CVPR-W 2020; Cutout: DeVries & Taylor 2017).

Per image: `num_ops` = 2 operations drawn uniformly with replacement from the list below, each at a magnitude drawn
uniformly from its range (FixMatch's variant of RandAugment: a random magnitude per op instead of one global M),
then Cutout of a gray square whose side is L x the image width, L ~ U(0, 0.5). The list and ranges are FixMatch's
Table 12 as the USB reference implements them (`semilearn/datasets/augmentation/randaugment.py`: `augment_list`,
`RandAugment.__call__`, `Cutout`), on float images in [0, 1] instead of 8-bit PIL images:

    autocontrast -, brightness [0.05, 0.95], color [0.05, 0.95], contrast [0.05, 0.95], equalize -, identity -,
    posterize [4, 8) bits (truncated to an integer, so 4..7, as USB's `int(v)`), rotate [-30, 30] degrees,
    sharpness [0.05, 0.95], shear_x / shear_y [-0.3, 0.3], solarize threshold [0, 1], translate_x / translate_y
    [-0.3, 0.3] of the side.

Enhance factors follow PIL's convention (the references call `PIL.ImageEnhance`): 0 gives the degenerate image (black
for brightness, gray for colour, the mean gray for contrast, the smoothed image for sharpness), 1 the original, so the
ranges above only weaken. Geometric ops fill uncovered pixels with 0 (black, PIL's default in the references) and
shear about the image centre; the ranges are symmetric, so PIL's sign conventions (it maps output to input
coordinates) do not change the distribution. Cutout's square is centred on a uniform pixel and clipped at the borders
(DeVries & Taylor's Cutout), filled with gray 0.5.

Batched on the images' device: all random draws (ops, magnitudes, Cutout) come from `generator` (torch's default CPU
generator when None) on its device; for each op the images that drew it are gathered with `index_select`, changed in
one call and written back with `index_copy_`, and the five affine ops of a slot share one `warp_affine` call, one
matrix per image. So the Python loop runs over ops (about 10 calls per slot), never over images. The draws are
small ((num_ops + 3) x B numbers) and are moved to the CPU once, where the grouping is computed, so only index
tensors and matrices travel and a CUDA batch is not synchronised per op (one sync per call with a CUDA generator).

Images with 1 channel, or 3 equal channels (grayscale stored as RGB), stay gray: every op is per channel, except
colour (a no-op on 1 channel; on equal channels the gray image is the image itself) and contrast (the mean of the
luma, equal to the channel's for equal channels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import kornia.enhance
import kornia.geometry.transform
import torch
from torch import nn

# FixMatch Table 12 / USB `augment_list`: op -> (low, high) of its uniformly drawn magnitude (unused by the ops
# without one). Solarize's range is USB's [0, 256] on 8-bit values, here on [0, 1].
FIXMATCH_RANGES: dict[str, tuple[float, float]] = {
    "autocontrast": (0.0, 1.0),
    "brightness": (0.05, 0.95),
    "color": (0.05, 0.95),
    "contrast": (0.05, 0.95),
    "equalize": (0.0, 1.0),
    "identity": (0.0, 1.0),
    "posterize": (4.0, 8.0),
    "rotate": (-30.0, 30.0),
    "sharpness": (0.05, 0.95),
    "shear_x": (-0.3, 0.3),
    "shear_y": (-0.3, 0.3),
    "solarize": (0.0, 1.0),
    "translate_x": (-0.3, 0.3),
    "translate_y": (-0.3, 0.3),
}
AFFINE_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _per_image(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(B,) magnitudes as (B, 1, 1, 1) on the images' device and dtype, to broadcast over (C, H, W)."""
    return values.to(images.device, images.dtype).view(-1, 1, 1, 1)


# ---- colour and intensity ops: (B, C, H, W) in [0, 1], a (B,) magnitude -> (B, C, H, W) in [0, 1] ----

def identity(images: torch.Tensor, magnitude: torch.Tensor | None = None) -> torch.Tensor:
    """The image unchanged (RandAugment includes it so that fewer than N ops are applied on average)."""
    return images


def auto_contrast(images: torch.Tensor, magnitude: torch.Tensor | None = None) -> torch.Tensor:
    """Stretch each channel so its darkest pixel is 0 and its brightest 1 (`PIL.ImageOps.autocontrast`, cutoff 0);
    a constant channel is left unchanged."""
    low = images.amin(dim=(-2, -1), keepdim=True)
    high = images.amax(dim=(-2, -1), keepdim=True)
    span = high - low
    stretched = (images - low) / span.clamp_min(torch.finfo(images.dtype).tiny)
    return torch.where(span > 0, stretched, images)


def brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's Brightness: factor x image (0 black, 1 unchanged), clipped to [0, 1]."""
    return kornia.enhance.adjust_brightness_accumulative(images, factor.to(images.device, images.dtype))


def color(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's Color: gray + factor x (image - gray), gray = the image's luma (0 grayscale, 1 unchanged). A 1-channel
    image is returned as it is (it has no colour)."""
    return kornia.enhance.adjust_saturation_with_gray_subtraction(images, factor.to(images.device, images.dtype))


def contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's Contrast: mean + factor x (image - mean), mean = the image's mean luma (0 uniform gray, 1 unchanged)."""
    return kornia.enhance.adjust_contrast_with_mean_subtraction(images, factor.to(images.device, images.dtype))


def equalize(images: torch.Tensor, magnitude: torch.Tensor | None = None) -> torch.Tensor:
    """Histogram equalisation per channel on 8-bit levels (`PIL.ImageOps.equalize`, kornia's batched version)."""
    return kornia.enhance.equalize(images)


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the `floor(bits)` high bits of each 8-bit value (`PIL.ImageOps.posterize`): v -> floor(v / 2^(8-b)) 2^(8-b).

    Written with floor on the 8-bit levels rather than kornia's uint8 shifts: the step is a power of two, so the
    float arithmetic is exact and a level never drops by one through rounding."""
    levels = torch.round(images * 255)
    step = torch.pow(2.0, 8 - torch.floor(bits).clamp(0, 8))
    step = _per_image(step, images)
    return torch.floor(levels / step) * step / 255


def sharpness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's Sharpness: blend with the image smoothed by PIL's 3x3 SMOOTH kernel (border pixels kept); 0 smoothed,
    1 unchanged. Needs H, W >= 3."""
    return kornia.enhance.sharpness(images, factor.to(images.device, images.dtype))


def solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert every value at or above the threshold: v -> 1 - v where v >= t (`PIL.ImageOps.solarize`)."""
    return kornia.enhance.solarize(images, thresholds=threshold.to(images.device, images.dtype))


# ---- affine ops: one (B, 2, 3) source->destination pixel matrix per image, warped in one call ----

def affine_matrices(op: str, magnitude: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, 3) matrices mapping source pixel (x, y) to destination pixel, x rightwards and y downwards, origin at
    the top-left pixel centre, (cx, cy) = ((W - 1) / 2, (H - 1) / 2) the image centre:

    - rotate (degrees): counter-clockwise as displayed (PIL's `Image.rotate`) about the centre.
    - shear_x (m): x' = x + m (y - cy), rows below the centre move right; shear_y: y' = y + m (x - cx).
    - translate_x (m): x' = x + m W, the content moves right by m of the width; translate_y: y' = y + m H.
    """
    m = magnitude.to(torch.float64)  # built in float64: a 90-degree rotation must land exactly on pixel centres
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    if op == "rotate":
        angle = m * (math.pi / 180)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rows = [cos, sin, (1 - cos) * cx - sin * cy, -sin, cos, sin * cx + (1 - cos) * cy]
    elif op == "shear_x":
        rows = [one, m, -m * cy, zero, one, zero]
    elif op == "shear_y":
        rows = [one, zero, zero, m, one, -m * cx]
    elif op == "translate_x":
        rows = [one, zero, m * width, zero, one, zero]
    elif op == "translate_y":
        rows = [one, zero, zero, zero, one, m * height]
    else:
        raise ValueError(f"affine_matrices: {op!r} is not one of {', '.join(AFFINE_OPS)}")
    return torch.stack(rows, dim=-1).view(-1, 2, 3)


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply one (2, 3) source->destination pixel matrix per image (bilinear, zeros outside), same size out."""
    height, width = images.shape[-2:]
    matrices = matrices.to(images.device, images.dtype)
    return kornia.geometry.transform.warp_affine(images, matrices, (height, width), mode="bilinear",
                                                 padding_mode="zeros", align_corners=True)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate counter-clockwise by `degrees` about the centre, black outside."""
    return warp(images, affine_matrices("rotate", degrees, *images.shape[-2:]))


def shear_x(images: torch.Tensor, shear: torch.Tensor) -> torch.Tensor:
    """Shear along x about the centre row: x' = x + shear (y - cy)."""
    return warp(images, affine_matrices("shear_x", shear, *images.shape[-2:]))


def shear_y(images: torch.Tensor, shear: torch.Tensor) -> torch.Tensor:
    """Shear along y about the centre column: y' = y + shear (x - cx)."""
    return warp(images, affine_matrices("shear_y", shear, *images.shape[-2:]))


def translate_x(images: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """Move the content right by `fraction` of the width (left when negative), black where it uncovers."""
    return warp(images, affine_matrices("translate_x", fraction, *images.shape[-2:]))


def translate_y(images: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
    """Move the content down by `fraction` of the height (up when negative), black where it uncovers."""
    return warp(images, affine_matrices("translate_y", fraction, *images.shape[-2:]))


OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "autocontrast": auto_contrast, "brightness": brightness, "color": color, "contrast": contrast,
    "equalize": equalize, "identity": identity, "posterize": posterize, "rotate": rotate, "sharpness": sharpness,
    "shear_x": shear_x, "shear_y": shear_y, "solarize": solarize, "translate_x": translate_x,
    "translate_y": translate_y,
}


def apply_op(op: str, images: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """One named op on every image of the batch, image i at `magnitude[i]` (in the op's own units: degrees, factor,
    bits, threshold, fraction of the side; ignored by the ops without one)."""
    if op not in OPS:
        raise ValueError(f"apply_op: unknown op {op!r}; expected one of {', '.join(OPS)}")
    return OPS[op](images, magnitude)


def cutout(images: torch.Tensor, center_y: torch.Tensor, center_x: torch.Tensor, size: torch.Tensor,
           fill: float = 0.5) -> torch.Tensor:
    """Fill a `size` x `size` square per image with `fill`: rows [cy - size // 2, cy - size // 2 + size), the same for
    columns, clipped at the borders (so near an edge only the part inside the image is filled). (B,) long tensors;
    size 0 leaves the image unchanged."""
    height, width = images.shape[-2:]
    device = images.device
    top = (center_y - size // 2).to(device).view(-1, 1, 1, 1)
    left = (center_x - size // 2).to(device).view(-1, 1, 1, 1)
    side = size.to(device).view(-1, 1, 1, 1)
    rows = torch.arange(height, device=device).view(1, 1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, 1, -1)
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return torch.where(inside, torch.full_like(images, fill), images)


def rand_augment(
    images: torch.Tensor, num_ops: int = 2, ops: Sequence[str] = tuple(FIXMATCH_RANGES), cutout_max: float = 0.5,
    fill: float = 0.5, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """FixMatch's strong view of a (B, C, H, W) batch in [0, 1]: per image `num_ops` ops drawn uniformly (with
    replacement) from `ops`, each at a magnitude ~ U(FIXMATCH_RANGES[op]), applied in order, then Cutout of side
    floor(L W), L ~ U(0, cutout_max) (`cutout_max=0` skips it). Returns a new tensor of the same shape in [0, 1];
    the input is not modified. The same `generator` state gives the same output."""
    if images.dim() != 4:
        raise ValueError(f"rand_augment expects (B, C, H, W) images, got shape {tuple(images.shape)}")
    unknown = [op for op in ops if op not in FIXMATCH_RANGES]
    if unknown or not ops:
        raise ValueError(f"rand_augment: unknown ops {unknown}; expected a non-empty subset of {', '.join(OPS)}")
    batch, _, height, width = images.shape
    device = generator.device if generator is not None else torch.device("cpu")
    # every draw up front, on the generator's device, in a fixed order: reproducible whatever the ops do
    chosen = torch.randint(len(ops), (num_ops, batch), generator=generator, device=device).cpu()
    unit = torch.rand((num_ops, batch), generator=generator, device=device, dtype=torch.float64).cpu()
    cut = torch.rand((3, batch), generator=generator, device=device, dtype=torch.float64).cpu()
    low = torch.tensor([FIXMATCH_RANGES[op][0] for op in ops], dtype=torch.float64)
    high = torch.tensor([FIXMATCH_RANGES[op][1] for op in ops], dtype=torch.float64)
    magnitudes = low[chosen] + (high[chosen] - low[chosen]) * unit  # (num_ops, B), in each op's units

    out = images.clone()
    for slot in range(num_ops):
        affine_rows, affine_matrix_parts = [], []
        for op_id, op in enumerate(ops):
            rows = (chosen[slot] == op_id).nonzero().flatten()  # on the CPU: no device sync
            if rows.numel() == 0 or op == "identity":
                continue
            if op in AFFINE_OPS:  # gathered, warped below in one call with the slot's other affine ops
                affine_rows.append(rows)
                affine_matrix_parts.append(affine_matrices(op, magnitudes[slot, rows], height, width))
                continue
            index = rows.to(images.device)
            out.index_copy_(0, index, OPS[op](out.index_select(0, index), magnitudes[slot, rows]))
        if affine_rows:
            index = torch.cat(affine_rows).to(images.device)
            out.index_copy_(0, index, warp(out.index_select(0, index), torch.cat(affine_matrix_parts)))

    if cutout_max > 0:
        size = (cut[0] * cutout_max * width).long()
        center_y = (cut[1] * height).long().clamp(max=height - 1)
        center_x = (cut[2] * width).long().clamp(max=width - 1)
        out = cutout(out, center_y, center_x, size, fill)
    return out.clamp_(0.0, 1.0)


class RandAugment(nn.Module):
    """`rand_augment` as a module (FixMatch's strong augmentation, no parameters): `forward(images, generator=None)`.
    Defaults are FixMatch's: 2 ops from the full list, Cutout up to half the side, gray fill."""

    def __init__(self, num_ops: int = 2, ops: Sequence[str] = tuple(FIXMATCH_RANGES), cutout_max: float = 0.5,
                 fill: float = 0.5):
        super().__init__()
        unknown = [op for op in ops if op not in FIXMATCH_RANGES]
        if num_ops < 0 or not 0 <= cutout_max <= 1 or unknown or not ops:
            raise ValueError(f"RandAugment: need num_ops >= 0, 0 <= cutout_max <= 1 and ops from "
                             f"{', '.join(FIXMATCH_RANGES)}; got {num_ops}, {cutout_max}, unknown {unknown}")
        self.num_ops, self.ops, self.cutout_max, self.fill = num_ops, tuple(ops), cutout_max, fill

    def extra_repr(self) -> str:
        return f"num_ops={self.num_ops}, ops={len(self.ops)}, cutout_max={self.cutout_max}, fill={self.fill}"

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return rand_augment(images, self.num_ops, self.ops, self.cutout_max, self.fill, generator)


__all__ = [
    "AFFINE_OPS", "FIXMATCH_RANGES", "OPS", "RandAugment", "affine_matrices", "apply_op", "auto_contrast",
    "brightness", "color", "contrast", "cutout", "equalize", "identity", "posterize", "rand_augment", "rotate",
    "sharpness", "shear_x", "shear_y", "solarize", "translate_x", "translate_y", "warp",
]
