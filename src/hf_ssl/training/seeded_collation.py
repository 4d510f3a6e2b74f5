"""Random draws of the data pipeline that depend on the batch, not on when it was fetched: what makes a resumed run
end with the uninterrupted run's weights.

Datasets and collators draw from the global generators (augmentation and masking in the collator; word2vec's
subsampling and negatives and CLIP's caption choice when an example is fetched). With those alone, resuming cannot
be exact: the data loader runs ahead of the step (accelerate's `DataLoaderShard` fetches batch k + 1 before it
yields batch k, and Trainer 5.25 fetches a step's batches before restoring the checkpoint's generator states), so
the states a checkpoint saves already include draws for batches the resumed run fetches again, and the model's own
draws (MAE's masks, dropout) shift too. So the data loader hands over indices only (`BatchIndices`), and
`SeededCollator` fetches and collates each batch under generators seeded from (seed, process, epoch, batch index in
the epoch), restoring the global ones afterwards: batch i gets the same draws whenever it is fetched, in the main
process or a DataLoader worker, and the model draws from a global stream the data pipeline never touches, which
the checkpoint restores exactly.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import has_length


def batch_seed(seed: int, process_index: int, epoch: int, batch: int) -> int:
    """A 63-bit seed for one batch, distinct for every (seed, process, epoch, batch)."""
    mixed = np.random.SeedSequence([seed & 0xFFFFFFFF, process_index, epoch, batch]).generate_state(2, np.uint32)
    return (int(mixed[0]) << 31) ^ int(mixed[1])


class BatchIndices(Dataset):
    """`dataset` as its indices, what Trainer's data loader samples and batches; `SeededCollator` fetches them."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> int:
        return index


# The keys of a batch whose collation is deferred to the training device (`SeededCollator(on_device=True)`)
DEFERRED_EXAMPLES = "examples_to_collate"
DEFERRED_SEED = "collation_seed"


class SeededCollator:
    """Fetches a batch of indices from `dataset` and collates it: batch `b` of epoch `e` on process `p` under torch,
    Python and NumPy generators seeded with `batch_seed(seed, p, e, b)` (the fetch) and a seed derived from it (the
    collation); the global generator states are restored afterwards, so the data pipeline draws nothing from them.
    `start_epoch` (`SeededCollationCallback`) sets where the next batch is, before the epoch's data loader starts
    (and hands copies of this object to its workers).

    With `on_device`, the data loader only fetches (decodes) the examples and stacks them, with the collation's seed;
    the collation itself (the method's batched augmentation and masking) runs where the step runs, on the batch the
    step receives (`collate_on_device`, called by the trainer once the batch is on its device): on a GPU, the CPU only
    decodes. The draws are the same seeded ones, so on one device both ways give the same batches bit for bit."""

    def __init__(self, collate: Callable[[list[Any]], Any], dataset: Dataset | None, seed: int, process_index: int = 0,
                 on_device: bool = False):
        self.collate = collate
        self.dataset = dataset
        self.seed = seed
        self.process_index = process_index
        self.on_device = on_device
        self.epoch = 0
        self.first_batch = 0
        self._collated = 0

    def start_epoch(self, epoch: int, first_batch: int = 0) -> None:
        self.epoch, self.first_batch, self._collated = epoch, first_batch, 0

    def __call__(self, items: list[Any]) -> Any:
        """`items`: indices into `dataset`, or, with `dataset` None, the examples themselves (a streamed dataset,
        which the data loader iterates: whatever it draws, it draws when its examples are read)."""
        # DataLoader workers take batches in turn: worker w of W collates batches w, w + W, w + 2W, ...
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        batch = self.first_batch + self._collated * workers + worker_id
        self._collated += 1
        seed = batch_seed(self.seed, self.process_index, self.epoch, batch)
        # One save and restore of the global generators for the fetch and the collation (saving NumPy's state
        # alone costs 0.07 ms)
        with preserved_generators():
            if self.dataset is None:
                examples = list(items)
            else:
                seed_generators(seed)
                examples = fetch_examples(self.dataset, items)
            if self.on_device:
                return {DEFERRED_EXAMPLES: default_collate(examples), DEFERRED_SEED: collation_seed(seed)}
            seed_generators(collation_seed(seed))
            return self.collate(examples)

    def collate_on_device(self, batch: dict[str, Any]) -> Any:
        """Collate a deferred batch (`on_device`) where its stacked examples now are, under its collation seed."""
        stacked, seed = batch[DEFERRED_EXAMPLES], int(batch[DEFERRED_SEED])
        size = len(next(iter(stacked.values())))
        devices = sorted({t.device for t in stacked.values() if isinstance(t, torch.Tensor) and t.is_cuda}, key=str)
        with seeded_generators(seed, devices):
            return self.collate([{key: values[i] for key, values in stacked.items()} for i in range(size)])


def fetch_examples(dataset: Dataset, indices: Sequence[int]) -> list[Any]:
    """`dataset`'s examples at `indices`, as torch's DataLoader fetches them: with the dataset's `__getitems__` where it
    has one (a dataset that draws a batch faster at once than example by example: word2vec's), else one by one."""
    if hasattr(dataset, "__getitems__"):  # torch's optional batched-fetch protocol, probed as its DataLoader does
        return dataset.__getitems__(list(indices))
    return [dataset[i] for i in indices]


def collation_seed(fetch_seed: int) -> int:
    """The seed of a batch's collation, derived from its fetch's (the two must not draw the same stream)."""
    return (fetch_seed + 0x9E3779B97F4A7C15) % 2**63


@contextlib.contextmanager
def preserved_generators(devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """torch's (CPU, and `devices`' CUDA generators), Python's and NumPy's global generators restored after the block
    to their states before it."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    torch_state = torch.default_generator.get_state()
    device_states = [torch.cuda.get_rng_state(device) for device in devices]
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.default_generator.set_state(torch_state)
        for device, state in zip(devices, device_states):
            torch.cuda.set_rng_state(state, device)


def seed_generators(seed: int, devices: Sequence[torch.device] = ()) -> None:
    """Seeds torch's CPU generator (and `devices`' CUDA generators), Python's and NumPy's from `seed`. Each generator
    by itself, not by `torch.manual_seed`: that seeds every CUDA, XPU and MTIA generator too, and where those are not
    initialised queues the seeding with a captured stack trace, 0.11 ms a call (5% of word2vec's steps)."""
    torch.default_generator.manual_seed(seed)
    for device in devices:
        with torch.cuda.device(device):  # an index-less "cuda" is the current device, as get_rng_state reads it
            torch.cuda.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


@contextlib.contextmanager
def seeded_generators(seed: int, devices: Sequence[torch.device] = ()) -> Iterator[None]:
    """The global generators seeded from `seed` inside the block (`seed_generators`), restored after it."""
    with preserved_generators(devices):
        seed_generators(seed, devices)
        yield


class SeededCollationCallback(TrainerCallback):
    """Tells the `SeededCollator` at each epoch's start which epoch it is and which batch of it comes first: 0, or,
    in the epoch a resumed run starts in, the batches Trainer skips (the optimizer steps of that epoch already done
    times the accumulation steps, as `Trainer._inner_training_loop` computes them)."""

    def __init__(self, collator: SeededCollator):
        self.collator = collator
        self.passes = 0  # over a streamed dataset, in this process

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       train_dataloader=None, **kwargs) -> None:
        batches = len(train_dataloader) if has_length(train_dataloader) else None
        if batches is None:
            # A streamed dataset: Trainer starts an epoch at each pass over the stream, and a resumed run skips the
            # batches it has trained on by reading and collating them again (accelerate's `skip_first_batches`), so
            # batch numbers restart at 0 in each pass. (A run resumed after its first pass does not skip the right
            # batches: Trainer counts the steps of an iterable dataset's epoch as `max_steps`.)
            self.collator.start_epoch(self.passes, 0)
            self.passes += 1
            return
        steps_per_epoch = max(1, math.ceil(batches / args.gradient_accumulation_steps))
        epoch, step_in_epoch = divmod(state.global_step, steps_per_epoch)
        self.collator.start_epoch(epoch, step_in_epoch * args.gradient_accumulation_steps)
