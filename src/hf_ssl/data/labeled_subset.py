"""The labelled subset of a semi-supervised run: which training examples keep their label.

Semi-supervised benchmarks (USB, FixMatch's CIFAR-10 with 40 / 250 / 4,000 labels) keep K labels per class of the
training split and hide the rest; the chosen ids must be reproducible from a seed and recorded with the run, so that
a table row can be re-run and audited. Three ways to say which examples are labelled:

- `labels_per_class=K`: K examples of every class, drawn at random (stratified);
- `labeled_fraction=F`: round(F * n_c) examples of each class c (at least one), the class balance of the data kept;
- neither: every example that has a label.

An example whose label is already missing (a partly empty label column: -1 or None) is unlabelled in every case and
never chosen. The draw uses its own `torch.Generator` seeded with `seed`, independent of the global RNG (Trainer
seeds that later; the subset must not depend on what ran before).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ..errors import HfSslError

__all__ = ["UNLABELED", "labels_with_missing", "read_labeled_subset", "select_labeled_subset", "write_labeled_subset"]

UNLABELED = -1  # the label of an example without one, everywhere in hf-ssl's semi-supervised code


def select_labeled_subset(labels: torch.Tensor, labels_per_class: int | None = None,
                          labeled_fraction: float | None = None, seed: int = 0,
                          num_classes: int | None = None) -> torch.Tensor:
    """The sorted ids (int64) of the examples that keep their label.

    `labels`: (N,) int class ids, negative for examples without a label. `num_classes` (default: the largest label
    + 1) names the classes that must each provide `labels_per_class` examples: a class with fewer raises
    `HfSslError`. Per class, in class order, one permutation of its labelled ids is drawn from a generator seeded with
    `seed` and its first K (or round(F * n_c), at least 1) ids are kept.
    """
    if labels_per_class is not None and labeled_fraction is not None:
        raise HfSslError("give either labels_per_class or labeled_fraction, not both")
    if labels_per_class is not None and labels_per_class < 1:
        raise HfSslError(f"labels_per_class must be at least 1, got {labels_per_class}")
    if labeled_fraction is not None and not 0.0 < labeled_fraction <= 1.0:
        raise HfSslError(f"labeled_fraction must be in (0, 1], got {labeled_fraction}")
    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    known = labels >= 0
    if not bool(known.any()):
        raise HfSslError("no training example has a label: semi-supervised training needs some labels")
    if labels_per_class is None and labeled_fraction is None:
        return known.nonzero().flatten()
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        if labels_per_class is not None:
            count = labels_per_class
            if members.numel() < count:
                raise HfSslError(f"class {c} has {members.numel()} labelled training examples, fewer than "
                                 f"labels_per_class={labels_per_class}")
        else:
            if members.numel() == 0:
                continue  # a class absent from the training labels contributes nothing to a fraction
            count = min(members.numel(), max(1, round(labeled_fraction * members.numel())))
        order = torch.randperm(members.numel(), generator=generator)
        chosen.append(members[order[:count]])
    return torch.cat(chosen).sort().values


def labels_with_missing(dataset: datasets.Dataset, column: str) -> torch.Tensor:
    """The int64 class ids of `dataset[column]`, with `UNLABELED` (-1) where the label is missing (None, or already
    negative as datasets' `ClassLabel` writes it). Raises `HfSslError` for a column of non-integer labels."""
    if column not in dataset.features:
        raise HfSslError(f"dataset has no column '{column}' (columns: {', '.join(dataset.features)})")
    values = dataset.with_format("arrow", columns=[column])[:][column]  # honours an indices mapping (select)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not (pa.types.is_integer(values.type) or pa.types.is_null(values.type)):
        raise HfSslError(f"label column '{column}' holds {dataset.features[column]}, not integer class ids "
                         "(datasets' class_encode_column converts string labels)")
    filled = pc.fill_null(values.cast(pa.int64()), UNLABELED)
    labels = torch.from_numpy(np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64).copy())
    return labels.clamp_(min=UNLABELED)


def write_labeled_subset(path: str | os.PathLike, ids: torch.Tensor, settings: dict[str, Any]) -> None:
    """Record the chosen ids and how they were chosen (`settings`: labels_per_class, labeled_fraction, seed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**settings, "labeled_example_ids": ids.tolist()}), encoding="utf-8")
    os.replace(tmp, path)


def read_labeled_subset(path: str | os.PathLike) -> tuple[torch.Tensor, dict[str, Any]] | None:
    """What `write_labeled_subset` wrote: (ids, settings), or None when there is no record."""
    path = Path(path)
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    ids = torch.tensor(record.pop("labeled_example_ids"), dtype=torch.long)
    return ids, record
