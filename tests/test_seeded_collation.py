"""The data pipeline's per-batch seeding (`hf_ssl.training.seeded_collation`): a batch's draws depend on its seed
alone, and the global generators come out of a batch as they went in."""

import random

import numpy as np
import torch

from hf_ssl.training.seeded_collation import SeededCollator


class DrawingDataset(torch.utils.data.Dataset):
    """Each fetch draws from torch's, Python's and NumPy's global generators."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[float, float, float]:
        return torch.rand(()).item(), random.random(), float(np.random.rand())


def drawing_collate(examples: list[tuple[float, float, float]]) -> dict:
    return {"examples": examples, "collation": (torch.rand(()).item(), random.random(), float(np.random.rand()))}


def global_draws() -> tuple[float, float, float]:
    return torch.rand(()).item(), random.random(), float(np.random.rand())


def test_a_batch_draws_from_its_seed_and_leaves_the_global_generators_as_they_were():
    collator = SeededCollator(drawing_collate, DrawingDataset(), seed=3)
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    first = collator([0, 1])
    after_batch = global_draws()
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    assert global_draws() == after_batch  # the batch drew nothing from the global streams

    # batch 0 again, under other global states: the same draws; the next batch index: other ones
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    collator.start_epoch(0)
    assert collator([0, 1]) == first
    second = collator([0, 1])
    assert second["examples"] != first["examples"] and second["collation"] != first["collation"]
    # the fetch and the collation draw from different seeds
    assert first["collation"] not in first["examples"]
    # another epoch, other draws
    collator.start_epoch(1)
    assert collator([0, 1])["examples"] != first["examples"]


class BatchFetchingDataset(DrawingDataset):
    """A dataset with torch's batched-fetch protocol: a batch's indices come in one call."""

    def __init__(self):
        self.calls = []

    def __getitems__(self, indices: list[int]) -> list[tuple[float, float, float]]:
        self.calls.append(list(indices))
        return [self[i] for i in indices]


def test_a_dataset_with_getitems_is_fetched_a_batch_at_a_time_under_the_batch_seed():
    dataset = BatchFetchingDataset()
    batched = SeededCollator(drawing_collate, dataset, seed=3)([4, 2, 7])
    assert dataset.calls == [[4, 2, 7]]
    # the same draws as one-by-one fetches of the same batch
    assert batched == SeededCollator(drawing_collate, DrawingDataset(), seed=3)([4, 2, 7])
