"""The training dataset of semi-supervised methods: every item is one labelled image and `mu` unlabelled ones.

FixMatch (Sohn et al. 2020) and USB draw, at every step, B labelled images and mu * B unlabelled ones (mu = 7).
Here that ratio lives in the items of one map-style dataset, so `Trainer`'s own sampler, shuffling, seeding,
gradient accumulation, resumption and distributed sharding apply unchanged: with L labelled and U unlabelled
examples the dataset has `max(L, ceil(U / mu))` items; item i holds labelled example `i mod L` and unlabelled
examples `(i * mu + j) mod U` for j < mu. Trainer shuffles the items, so one epoch covers every unlabelled example
once (a few twice when mu does not divide U) and draws the labelled ones uniformly, each about `len / L` times.
There is no randomness in `__getitem__`.

Hidden labels are not passed here: the dataset sees -1 for every unlabelled example, whatever its true class, so the
training step cannot read them (`tests/test_semi_supervised_data.py` corrupts them and checks the step is unchanged).
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from ..errors import HfSslError

__all__ = ["SemiSupervisedDataset", "hide_labels"]


class SemiSupervisedDataset(Dataset):
    """`images` uint8 (N, C, H, W); `labels` (N,) int64, -1 for unlabelled examples; `unlabeled_ratio` = mu.

    Item i: `{"labeled_pixels": (C, H, W) uint8, "labels": () int64, "unlabeled_pixels": (mu, C, H, W) uint8,
    "unlabeled_index": (mu,) int64}`, the last two only when mu > 0 and there are unlabelled examples.
    `unlabeled_index` is the position of each unlabelled example in `unlabeled_ids` (0..U-1), the key under which
    pseudo-labels are recorded (`PseudoLabels.unlabeled_index`) and the monitor finds the hidden labels.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, unlabeled_ratio: int):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        if unlabeled_ratio < 0:
            raise ValueError(f"unlabeled_ratio must be >= 0, got {unlabeled_ratio}")
        self.images = images
        self.labels = labels.long()
        self.mu = int(unlabeled_ratio)
        self.labeled_ids = (self.labels >= 0).nonzero().flatten()
        self.unlabeled_ids = (self.labels < 0).nonzero().flatten()
        if self.labeled_ids.numel() == 0:
            raise HfSslError("no labelled training example: semi-supervised training needs some labels")

    @property
    def num_labeled(self) -> int:
        return self.labeled_ids.numel()

    @property
    def num_unlabeled(self) -> int:
        return self.unlabeled_ids.numel()

    @property
    def uses_unlabeled(self) -> bool:
        """True when items carry unlabelled images (mu > 0 and some example is unlabelled)."""
        return self.mu > 0 and self.num_unlabeled > 0

    def __len__(self) -> int:
        if self.uses_unlabeled:
            return max(self.num_labeled, math.ceil(self.num_unlabeled / self.mu))
        return self.num_labeled

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        labeled = self.labeled_ids[index % self.num_labeled]
        item = {"labeled_pixels": self.images[labeled], "labels": self.labels[labeled]}
        if self.uses_unlabeled:
            positions = (index * self.mu + torch.arange(self.mu)) % self.num_unlabeled
            item["unlabeled_pixels"] = self.images[self.unlabeled_ids[positions]]
            item["unlabeled_index"] = positions
        return item


def hide_labels(images: torch.Tensor, labels: torch.Tensor, labeled_ids: torch.Tensor,
                unlabeled_ratio: int) -> tuple[SemiSupervisedDataset, torch.Tensor]:
    """Split a labelled training set into what training sees and what it must not.

    Returns the `SemiSupervisedDataset` whose labels are `labels` at `labeled_ids` and -1 everywhere else, and the
    hidden labels: (U,) the true `labels` of its unlabelled examples in the order of `unlabeled_ids` (the positions
    `unlabeled_index` names; -1 where the data has no label), for the pseudo-label monitor only.
    """
    training_labels = torch.full_like(labels, -1)
    training_labels[labeled_ids] = labels[labeled_ids]
    dataset = SemiSupervisedDataset(images, training_labels, unlabeled_ratio)
    return dataset, labels[dataset.unlabeled_ids].clone()
