"""Batched image augmentations (kornia): one call augments a whole (B, C, H, W) batch, each image
with its own random parameters, on whatever device the batch is on.

Inputs are float images in [0, 1]; the colour operations (jitter, grayscale) expect RGB (C = 3), which
is what `images_to_tensor(..., num_channels=3)` produces for gray datasets too.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import torch
from torch import nn


def random_resized_crop_flip(image_size: int, min_scale: float = 0.2,
                             horizontal_flip: bool = True) -> nn.Module | None:
    """RandomResizedCrop(scale=(min_scale, 1), ratio=(3/4, 4/3)) then an optional horizontal flip: the
    augmentation of MAE (He et al. 2022) and of the linear/fine-tuning recipes of most SSL papers. `min_scale` 1
    keeps the whole image (kornia's crop of area 1 falls back to it), so there is no crop to run; None when there is
    nothing to do."""
    ops: list[nn.Module] = []
    if min_scale < 1.0:
        ops.append(K.RandomResizedCrop((image_size, image_size), scale=(min_scale, 1.0), ratio=(3 / 4, 4 / 3)))
    if horizontal_flip:
        ops.append(K.RandomHorizontalFlip())
    return K.AugmentationSequential(*ops) if ops else None


def random_horizontal_flip() -> nn.Module:
    """A random horizontal flip (p = 0.5), each image its own draw."""
    return K.AugmentationSequential(K.RandomHorizontalFlip())


def flip_and_shift(image_size: int, horizontal_flip: bool = True, max_translation: float = 0.125) -> nn.Module | None:
    """The "weak" augmentation of semi-supervised learning (FixMatch, Sohn et al. 2020, Sec. 2.3 and App. D; Mean
    Teacher's translations): a random horizontal flip (p = 0.5) if `horizontal_flip`, then a random translation by up
    to `max_translation` of the side in each direction, as USB implements it: reflect-pad by
    round(max_translation * image_size) pixels, then a random crop back to the original size (4 px at 32 px for the
    paper's 12.5%). None when there is nothing to do."""
    ops: list[nn.Module] = []
    if horizontal_flip:
        ops.append(K.RandomHorizontalFlip())
    padding = round(max_translation * image_size)
    if padding > 0:
        ops.append(K.RandomCrop((image_size, image_size), padding=padding, padding_mode="reflect"))
    return K.AugmentationSequential(*ops) if ops else None


def blur_kernel_size(image_size: int) -> int:
    """About 10% of the image side, odd and at least 3 (SimCLR appendix A: 23 px at 224; 3 px at 16 or 32)."""
    size = max(3, int(0.1 * image_size))
    return size + 1 - size % 2


def is_grayscale(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images -> (B,) bool, True for an image without colour: one channel, or every channel equal to
    the first on every pixel (gray datasets are loaded as 3 equal channels)."""
    if images.shape[1] == 1:
        return torch.ones(images.shape[0], dtype=torch.bool, device=images.device)
    return (images == images[:, :1]).flatten(1).all(dim=1)


class GrayAwareView(nn.Module):
    """A view pipeline that leaves its colour operations out on a batch of gray images.

    On an image whose channels are equal (Fashion-MNIST, MNIST, digits: gray datasets are loaded as 3 equal
    channels), saturation and hue jitter and random grayscale change nothing, and every other operation (crop, flip,
    brightness, contrast, blur, solarisation) treats the channels alike. So when the whole batch is gray it runs
    through `gray`, the same pipeline without those three operations, on one channel, and the result is repeated
    to the input's channels: the same distribution of views (the random draws differ), in half the time (SimCLR's
    view of 256 gray images of 32 px on one thread: 36 ms -> 18 ms; colour jitter alone 22 ms -> 1 ms, hue's
    RGB -> HSV -> RGB round trip). A batch with any colour image runs through `colour`, the whole pipeline.
    """

    def __init__(self, colour: nn.Module, gray: nn.Module):
        super().__init__()
        self.colour = colour
        self.gray = gray

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # One host sync a batch when the batch is on a GPU: collation, not the training step
        if not is_grayscale(images).all():
            return self.colour(images)
        return self.gray(images[:, :1]).expand(-1, images.shape[1], -1, -1).contiguous()


def _view(
    image_size: int, scale: tuple[float, float], jitter: tuple[float, float, float, float],
    jitter_probability: float = 0.8, grayscale_probability: float = 0.2, blur_probability: float = 0.5,
    solarize_probability: float = 0.0,
) -> GrayAwareView:
    """The view pipeline shared by SimCLR, BYOL, DINO and SwAV: crop + resize, flip, colour jitter applied with
    `jitter_probability` (brightness, contrast, saturation, hue with torchvision's formulas, in a random order:
    kornia draws one order per call, torchvision one per image), grayscale, Gaussian blur with sigma ~ U(0.1, 2),
    solarisation at 0.5. An op with probability 0 is left out (a pass over the batch for nothing). Gray batches
    skip the operations that cannot change them (`GrayAwareView`)."""

    def pipeline(colour: bool) -> nn.Module:
        brightness, contrast, saturation, hue = jitter if colour else (*jitter[:2], 0.0, 0.0)
        ops: list[nn.Module] = [
            K.RandomResizedCrop((image_size, image_size), scale=scale, ratio=(3 / 4, 4 / 3)),
            K.RandomHorizontalFlip(),
        ]
        if jitter_probability > 0 and any((brightness, contrast, saturation, hue)):
            ops.append(K.ColorJitter(brightness, contrast, saturation, hue, p=jitter_probability))
        if colour and grayscale_probability > 0:
            ops.append(K.RandomGrayscale(p=grayscale_probability))
        if blur_probability > 0:
            ops.append(K.RandomGaussianBlur(blur_kernel_size(image_size), (0.1, 2.0), p=blur_probability))
        if solarize_probability > 0:
            # thresholds=0, additions=0: x -> x if x < 0.5 else 1 - x, the fixed threshold of BYOL and DINO
            ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=solarize_probability))
        return K.AugmentationSequential(*ops)

    return GrayAwareView(colour=pipeline(colour=True), gray=pipeline(colour=False))


class MultiView(nn.Module):
    """Several augmented views of one batch: `forward(images)` returns `[t(images) for t in transforms]`.

    The same pipeline may appear several times (SimCLR's two views, multi-crop's local crops): each call is a
    fresh random draw per image. (Running a repeated pipeline once on the batch repeated n times was measured:
    no faster on 256 images of 32 px, and n times the input memory; kornia's per-call overhead is ~1 ms.)
    """

    def __init__(self, transforms: Sequence[nn.Module]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, index: int) -> nn.Module:
        return self.transforms[index]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [transform(images) for transform in self.transforms]


def simclr_augmentation(
    image_size: int, min_scale: float = 0.08, jitter_strength: float = 1.0, blur_probability: float = 0.5,
    grayscale_probability: float = 0.2,
) -> nn.Module:
    """One SimCLR view (Chen et al. 2020, Appendix A): random resized crop (scale min_scale-1, ratio 3/4-4/3) +
    flip, colour jitter of strength s (brightness, contrast, saturation 0.8 s, hue 0.2 s) with p = 0.8,
    grayscale with p = 0.2, Gaussian blur (sigma 0.1-2, kernel 10% of the side) with p = 0.5.

    Both views use this same pipeline: `MultiView([aug, aug])`. The paper drops the blur on CIFAR-10
    (`blur_probability=0`); MoCo v2's "aug+" is this pipeline with s = 0.5."""
    s = jitter_strength
    return _view(image_size, (min_scale, 1.0), (0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s),
                 grayscale_probability=grayscale_probability, blur_probability=blur_probability)


def byol_augmentations(image_size: int, min_scale: float = 0.08) -> MultiView:
    """BYOL's two asymmetric view pipelines (Grill et al. 2020, Table 6): both crop (scale 0.08-1) + flip,
    colour jitter 0.4/0.4/0.2/0.1 with p = 0.8, grayscale p = 0.2; Gaussian blur p = 1.0 for the first and
    0.1 for the second; solarisation p = 0 for the first and 0.2 for the second. Index [0] / [1], or call
    it on a batch for both views."""
    jitter = (0.4, 0.4, 0.2, 0.1)
    return MultiView([
        _view(image_size, (min_scale, 1.0), jitter, blur_probability=1.0),
        _view(image_size, (min_scale, 1.0), jitter, blur_probability=0.1, solarize_probability=0.2),
    ])


def multi_crop_augmentation(
    global_size: int, local_size: int, num_local: int, global_scale: tuple[float, float] = (0.4, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.4),
) -> MultiView:
    """Multi-crop (SwAV, Caron et al. 2020, Sec. 3.2) with DINO's pipelines (Caron et al. 2021, reference
    `DataAugmentationDINO`): 2 global views of `global_size` (crop scale 0.4-1; blur p = 1.0 for the first,
    blur p = 0.1 and solarisation p = 0.2 for the second) then `num_local` local views of `local_size`
    (crop scale 0.05-0.4, blur p = 0.5); all with flip, colour jitter 0.4/0.4/0.2/0.1 (p = 0.8) and
    grayscale (p = 0.2). The order (globals first) is the one `dino_loss` and `swav_loss` expect."""
    jitter = (0.4, 0.4, 0.2, 0.1)
    local = _view(local_size, local_scale, jitter, blur_probability=0.5)
    return MultiView([
        _view(global_size, global_scale, jitter, blur_probability=1.0),
        _view(global_size, global_scale, jitter, blur_probability=0.1, solarize_probability=0.2),
        *[local] * num_local,
    ])
