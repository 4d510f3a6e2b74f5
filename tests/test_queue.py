"""hf_ssl.nn.queue.EmbeddingQueue: FIFO order against a Python deque, commit-once semantics, state in checkpoints."""

from collections import deque

import pytest
import torch

from hf_ssl.nn.queue import EmbeddingQueue


def test_queue_is_a_fifo_of_the_newest_rows_like_a_deque():
    torch.manual_seed(0)
    queue = EmbeddingQueue(size=7, dim=3, random_init=False)
    reference = deque(maxlen=7)
    for n in (3, 4, 5, 2, 9, 1):  # batches that wrap around, and one larger than the queue
        batch = torch.randn(n, 3)
        queue.stage(batch)
        assert queue.commit(gather_distributed=False) == min(n, 7)
        reference.extend(batch)
        # row order in the ring: the oldest row sits at the pointer
        ring = torch.roll(queue.embeddings, -int(queue.pointer), dims=0)
        expected = torch.stack(list(reference))
        torch.testing.assert_close(ring[-len(reference):], expected)
    assert queue.is_full


def test_nothing_is_enqueued_until_commit_and_micro_batches_commit_together():
    queue = EmbeddingQueue(size=10, dim=2, random_init=False)
    a, b = torch.ones(2, 2), 2 * torch.ones(3, 2)
    queue.stage(a)
    queue.stage(b)
    assert int(queue.num_filled) == 0 and torch.count_nonzero(queue.embeddings) == 0
    assert queue.commit(gather_distributed=False) == 5
    torch.testing.assert_close(queue.embeddings[:5], torch.cat([a, b]))
    assert int(queue.pointer) == 5 and int(queue.num_filled) == 5 and not queue.is_full
    assert queue.commit(gather_distributed=False) == 0  # nothing staged: a second commit is a no-op


def test_staged_embeddings_are_detached():
    queue = EmbeddingQueue(size=4, dim=2, random_init=False)
    x = torch.randn(2, 2, requires_grad=True)
    queue.stage(x * 2)
    queue.commit(gather_distributed=False)
    assert not queue.embeddings.requires_grad


def test_random_init_is_unit_vectors_and_counts_as_full():
    queue = EmbeddingQueue(size=16, dim=8)
    torch.testing.assert_close(queue.embeddings.norm(dim=1), torch.ones(16))
    assert queue.is_full


def test_state_survives_a_state_dict_round_trip():
    queue = EmbeddingQueue(size=6, dim=2, random_init=False)
    queue.stage(torch.randn(4, 2))
    queue.commit(gather_distributed=False)
    restored = EmbeddingQueue(size=6, dim=2, random_init=False)
    restored.load_state_dict(queue.state_dict())
    assert torch.equal(restored.embeddings, queue.embeddings)
    assert int(restored.pointer) == 4 and int(restored.num_filled) == 4


@pytest.mark.parametrize("size,dim", [(0, 4), (4, 0)])
def test_invalid_sizes_are_refused(size, dim):
    with pytest.raises(ValueError, match="size and dim"):
        EmbeddingQueue(size, dim)
