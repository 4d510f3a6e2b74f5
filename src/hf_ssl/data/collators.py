"""Collators: lists of dataset examples -> model batches.

Images are stored as uint8 (C, H, W) tensors at the model's size; a collator stacks them, augments
the whole batch at once and normalises it, so the per-image Python work is one indexing op.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import HfSslError
from ..nn.normalization import PixelNormalization, rescale_pixels
from .transforms import (MultiView, byol_augmentations, flip_and_shift, is_grayscale, multi_crop_augmentation,
                         random_horizontal_flip, random_resized_crop_flip, simclr_augmentation)


class ImageCollator:
    """`[{"pixel_values": uint8 (C,H,W)}, ...]` -> `{"pixel_values": float (B,C,H,W)}`, augmented and normalised."""

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float], augment: nn.Module | None = None):
        self.normalize = PixelNormalization(image_mean, image_std)
        self.augment = augment

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        images = rescale_pixels(torch.stack([example["pixel_values"] for example in examples]))
        if self.augment is not None:
            with torch.no_grad():
                images = self.augment(images)
        return {"pixel_values": self.normalize(images)}


def crop_flip_collator(config) -> ImageCollator:
    """One view per image: random resized crop (area `config.crop_min_scale`-1) and, if `config.horizontal_flip`,
    a random flip, then normalisation: the whole augmentation of the masked-image-modelling methods (MAE, BEiT,
    SimMIM) and of the visual tokenizer; each config holds its paper's crop scale."""
    augment = random_resized_crop_flip(config.image_size, config.crop_min_scale, config.horizontal_flip)
    return ImageCollator(config.image_mean, config.image_std, augment=augment)


class ColorImageCollator(ImageCollator):
    """An `ImageCollator` for methods that learn from colour (colorization). With `require_color`, its first batch
    is checked once: if every image of it is grayscale, the data has no colour to learn and it raises `HfSslError`
    before the first step (a dataset with some gray images among colour ones passes; an all-gray first batch of a
    colour dataset is unlikely beyond a handful of images)."""

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float], augment: nn.Module | None = None,
                 require_color: bool = True, method: str = "this method"):
        super().__init__(image_mean, image_std, augment)
        self.require_color = require_color
        self.method = method
        self.checked = False

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if self.require_color and not self.checked:
            if is_grayscale(torch.stack([example["pixel_values"] for example in examples])).all():
                raise HfSslError(
                    f"{self.method} learns to predict colour, but the first batch of images is all grayscale (equal "
                    "channels on every pixel): the dataset has no colour to learn. Use a colour dataset (e.g. "
                    "imagefolder:PATH of photos); require_color=False trains anyway (for tests)."
                )
            self.checked = True
        return super().__call__(examples)


class MultiViewCollator:
    """`[{"pixel_values": uint8 (C,H,W)}, ...]` -> several augmented, normalised views of every image.

    Args:
        image_mean, image_std: per-channel normalisation applied to every view after augmentation.
        view_transforms: one batched transform per view (the same module may repeat: SimCLR's
            `[aug, aug]`), or a callable returning the list of views (`byol_augmentations(...)`,
            `multi_crop_augmentation(...)`). Each runs on the whole (B, C, H, W) batch in [0, 1].

    Returns `{"pixel_values": float (B, V, C, H, W)}`: views with the first view's size, in order. Views of
    another size (multi-crop's local crops) go to `"local_pixel_values"` (B, V_local, C, h, w); they must come
    after the first group and share one size. Why tensors and not a list of views: `Trainer.floating_point_ops`
    calls `inputs["pixel_values"].numel()` on every step and fails on a list (checked with transformers 5.23),
    although `_prepare_input` would move a list to the device. Why the batch first: accelerate's
    `dispatch_batches`/`split_batches` and Trainer's `find_batch_size` slice and count dim 0 of every tensor.
    A model takes `pixel_values.unbind(1)` for the views, or `pixel_values.transpose(0, 1).flatten(0, 1)` to
    run its backbone once on all V * B images (view-major: `.chunk(V)` splits the outputs back per view).
    """

    def __init__(
        self, image_mean: Sequence[float], image_std: Sequence[float],
        view_transforms: Sequence[nn.Module] | Callable[[torch.Tensor], Sequence[torch.Tensor]],
    ):
        self.normalize = PixelNormalization(image_mean, image_std)
        if isinstance(view_transforms, (list, tuple)):
            view_transforms = MultiView(view_transforms)
        self.view_transforms = view_transforms

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        images = rescale_pixels(torch.stack([example["pixel_values"] for example in examples]))
        with torch.no_grad():
            views = [self.normalize(view) for view in self.view_transforms(images)]
        split = next((i for i, view in enumerate(views) if view.shape != views[0].shape), len(views))
        first, rest = views[:split], views[split:]
        if any(view.shape != rest[0].shape for view in rest):
            raise ValueError("views must be one group of equal sizes, optionally followed by a second one "
                             f"(global crops, then local crops); got sizes {[tuple(v.shape[-2:]) for v in views]}")
        batch = {"pixel_values": torch.stack(first, dim=1)}
        if rest:
            batch["local_pixel_values"] = torch.stack(rest, dim=1)
        return batch


def simclr_views_collator(config) -> MultiViewCollator:
    """Two views of every image through one SimCLR-style pipeline with the config's four augmentation fields:
    random resized crop (scale `crop_min_scale`-1) + flip, colour jitter of strength `jitter_strength`
    (p = 0.8), grayscale, Gaussian blur. Each view is a fresh random draw per image."""
    augment = simclr_augmentation(
        config.image_size, min_scale=config.crop_min_scale, jitter_strength=config.jitter_strength,
        blur_probability=config.blur_probability, grayscale_probability=config.grayscale_probability,
    )
    return MultiViewCollator(config.image_mean, config.image_std, [augment, augment])


def byol_views_collator(config) -> MultiViewCollator:
    """BYOL's two asymmetric view pipelines (Grill et al. 2020, Table 6), with crop scale `crop_min_scale`-1: both
    random resized crop + flip, colour jitter 0.4/0.4/0.2/0.1 (p = 0.8), grayscale (p = 0.2); Gaussian blur
    p = 1.0 / 0.1 and solarisation p = 0 / 0.2 for view 1 / view 2. Each view is a fresh random draw per image."""
    return MultiViewCollator(config.image_mean, config.image_std,
                             byol_augmentations(config.image_size, min_scale=config.crop_min_scale))



NUM_GLOBAL_CROPS = 2


def multi_crop_collator(config) -> MultiViewCollator:
    """Multi-crop views for a `MultiCropConfig` (SwAV, DINO): the 2 global crops in `pixel_values` (B, 2, C, H, W) and the local crops in `local_pixel_values`
    (B, V_local, C, h, w), with the shared `multi_crop_augmentation` pipelines (DINO's reference colour
    distortion: jitter 0.4/0.4/0.2/0.1 with p = 0.8, grayscale p = 0.2, blur p = 1.0 / 0.1 / 0.5 for the first
    global, second global and local crops, solarisation p = 0.2 on the second global crop)."""
    augment = multi_crop_augmentation(
        config.image_size, config.local_crop_size, config.num_local_crops,
        global_scale=(config.global_crop_min_scale, config.global_crop_max_scale),
        local_scale=(config.local_crop_min_scale, config.local_crop_max_scale),
    )
    return MultiViewCollator(config.image_mean, config.image_std, augment)


class UInt8ImageDataset(torch.utils.data.Dataset):
    """A uint8 image tensor (N, C, H, W) as a map-style dataset of `{"pixel_values": ...}` examples."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.images[index]}


class ImageCaptionDataset(torch.utils.data.Dataset):
    """Images (uint8 (N, C, H, W)) paired with tokenized captions, for image-text contrastive training.

    Each image has one or more candidate captions (`candidates[i]`: row indices into `caption_ids`); every access
    draws one of them, so template-built captions ("a photo of a {}", "a drawing of a {}", ...) vary from epoch to
    epoch while the token ids are computed once.
    """

    def __init__(self, images: torch.Tensor, caption_ids: Sequence[torch.Tensor], candidates: Sequence[Sequence[int]]):
        if len(candidates) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but caption candidates for {len(candidates)}")
        self.images = images
        self.caption_ids = list(caption_ids)
        self.candidates = [list(c) for c in candidates]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        options = self.candidates[index]
        choice = options[int(torch.randint(len(options), ()))] if len(options) > 1 else options[0]
        return {"pixel_values": self.images[index], "input_ids": self.caption_ids[choice]}


class ImageCaptionCollator(ImageCollator):
    """`[{"pixel_values": uint8 (C,H,W), "input_ids": (L_i,)}, ...]` -> augmented, normalised pixels plus the
    captions right-padded with `pad_token_id` to the batch's longest, with their attention mask."""

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float], pad_token_id: int,
                 augment: nn.Module | None = None):
        super().__init__(image_mean, image_std, augment)
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().__call__(examples)
        captions = [example["input_ids"] for example in examples]
        input_ids = torch.nn.utils.rnn.pad_sequence(captions, batch_first=True, padding_value=self.pad_token_id)
        lengths = torch.tensor([len(c) for c in captions])
        batch["input_ids"] = input_ids
        batch["attention_mask"] = (torch.arange(input_ids.shape[1]) < lengths[:, None]).long()
        return batch


def flip_collator(config) -> ImageCollator:
    """One view per image, flipped at random if `config.horizontal_flip`, then normalised: the reconstruction pretext
    tasks (autoencoders, context encoder), whose target is the image itself."""
    return ImageCollator(config.image_mean, config.image_std,
                         augment=random_horizontal_flip() if config.horizontal_flip else None)


class SemiSupervisedCollator:
    """Items of a `SemiSupervisedDataset` -> the batch of a semi-supervised method, weakly augmented and normalised.

    `[{"labeled_pixels": uint8 (C,H,W), "labels": (), "unlabeled_pixels": uint8 (mu,C,H,W), "unlabeled_index": (mu,)},
    ...]` -> `{"labeled_pixels": float (B,C,H,W), "labels": (B,), "unlabeled_pixels": float (B*mu,C,H,W),
    "unlabeled_index": (B*mu,)}`; the unlabelled keys only when the items have them (mu > 0). With
    `unlabeled_views` = V > 1 (Mean Teacher's two noisy views of each unlabelled image), `unlabeled_pixels` is
    (V, B*mu, C, H, W): V independent draws of the weak augmentation of the same images, view-major.

    The weak augmentation (`flip_and_shift`: flip, translation with reflect padding) runs here on the CPU workers,
    batched, each image with its own draw; a method's strong augmentation (RandAugment) runs in its forward on the
    training device. Unlabelled images are flattened batch-major: rows i*mu .. i*mu+mu-1 belong to item i.
    """

    def __init__(self, image_mean: Sequence[float], image_std: Sequence[float], augment: nn.Module | None = None,
                 unlabeled_views: int = 1):
        if unlabeled_views < 1:
            raise ValueError(f"unlabeled_views must be at least 1, got {unlabeled_views}")
        self.normalize = PixelNormalization(image_mean, image_std)
        self.augment = augment
        self.unlabeled_views = unlabeled_views

    def _weak(self, images: torch.Tensor) -> torch.Tensor:
        images = rescale_pixels(images)
        if self.augment is not None:
            with torch.no_grad():
                images = self.augment(images)
        return self.normalize(images)

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = {
            "labeled_pixels": self._weak(torch.stack([example["labeled_pixels"] for example in examples])),
            "labels": torch.stack([torch.as_tensor(example["labels"]) for example in examples]).long(),
        }
        if "unlabeled_pixels" in examples[0]:
            unlabeled = torch.stack([example["unlabeled_pixels"] for example in examples]).flatten(0, 1)
            views = [self._weak(unlabeled) for _ in range(self.unlabeled_views)]
            batch["unlabeled_pixels"] = views[0] if self.unlabeled_views == 1 else torch.stack(views)
            batch["unlabeled_index"] = torch.stack([example["unlabeled_index"] for example in examples]).flatten()
        return batch


def semi_supervised_collator(config) -> SemiSupervisedCollator:
    """The collator of every semi-supervised method (a `SemiSupervisedConfig`): the weak augmentation
    `flip_and_shift(config.image_size, config.horizontal_flip, config.max_translation)` on the labelled images and
    on `config.unlabeled_views` views of the unlabelled ones, then normalisation."""
    augment = flip_and_shift(config.image_size, config.horizontal_flip, config.max_translation)
    return SemiSupervisedCollator(config.image_mean, config.image_std, augment, config.unlabeled_views)
