"""Cross-sample objectives in 2 real processes equal the 1-process global-batch ones: the joint-embedding and CLIP
losses with gather_distributed=True, SwAV's codes, DINO's centre, the queue, `top_k` pseudo-label selection (over the
unlabelled set), colorization's colour prior (over every target pixel) and the EMA codebook of BEiT's visual
tokenizer. The other pretext-task and semi-supervised losses are means of per-example terms: with DDP's equal local
batches the mean over ranks is the global mean, which the per-example entries of LOSSES check too.

Gradient factor: `gather_with_grad`'s backward sums what every rank computed for a slice, so each rank's local
inputs receive d(sum_r loss_r)/dx. Every loss below is defined so that mean_r loss_r = L, the loss of the
concatenated batch, hence the local gradients are WORLD_SIZE x dL/dx. DDP then averages parameter gradients
over ranks (divides by WORLD_SIZE), so training on 2 processes gets exactly the gradient of L.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from hf_ssl import ColorizationConfig, ColorizationForPreTraining
from hf_ssl.losses.barlow_twins import barlow_twins_loss
from hf_ssl.losses.clip import clip_loss
from hf_ssl.losses.consistency import soft_cross_entropy, softmax_mse_loss
from hf_ssl.losses.entropy_minimization import entropy_loss
from hf_ssl.losses.dino import update_center
from hf_ssl.losses.info_nce import info_nce_loss
from hf_ssl.losses.nt_xent import nt_xent_loss
from hf_ssl.losses.pseudo_label import pseudo_label_loss
from hf_ssl.losses.swav import sinkhorn_knopp
from hf_ssl.losses.vicreg import vicreg_loss
from hf_ssl.nn.backbone_presets import backbone_config_from_spec
from hf_ssl.nn.pseudo_labeling import TopKPerClassSelector
from hf_ssl.nn.vector_quantizer import VectorQuantizer

pytestmark = pytest.mark.distributed

WORLD_SIZE = 2

# Each entry returns a 1-d tensor whose first element is the loss to backpropagate (VICReg adds its terms).
LOSSES = {
    "nt_xent": lambda a, b, gather: nt_xent_loss(a, b, temperature=0.3, gather_distributed=gather)[None],
    "info_nce_v3": lambda q, k, gather: info_nce_loss(q, k, temperature=0.2, gather_distributed=gather,
                                                      scale_by_temperature=True)[None],
    "vicreg": lambda a, b, gather: torch.stack(vicreg_loss(a, b, gather_distributed=gather)),
    "barlow_twins": lambda a, b, gather: barlow_twins_loss(a, b, lambda_offdiag=0.1, gather_distributed=gather)[None],
    "clip": lambda images, texts, gather: clip_loss(images, texts, 10.0, gather_distributed=gather)[None],
    # per-example means (no cross-sample term): the pseudo-label, consistency and entropy losses of the
    # semi-supervised methods, with targets and weights from the other tensor
    "pseudo_label": lambda logits, other, gather: pseudo_label_loss(
        logits, other.argmax(-1), (other.softmax(-1).max(-1).values > 0.4).double())[None],
    "softmax_mse": lambda student, teacher, gather: softmax_mse_loss(student, teacher)[None],
    "entropy": lambda logits, other, gather: (
        entropy_loss(logits) + soft_cross_entropy(logits, other.softmax(-1)))[None],
}

WORKER = """
import sys
import torch
import torch.distributed as dist
from test_losses_distributed import LOSSES, NUM_UNLABELED, tiny_colorization, tiny_quantizer
from hf_ssl.nn.pseudo_labeling import TopKPerClassSelector
from hf_ssl.losses.dino import update_center
from hf_ssl.losses.swav import sinkhorn_knopp
from hf_ssl.nn.queue import EmbeddingQueue

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
data = torch.load(sys.argv[1], weights_only=True)
share = lambda t: t.chunk(world)[rank].clone()  # this rank's half of the global batch
local = lambda t: share(t).requires_grad_()
out = {}
for name, fn in LOSSES.items():
    a, b = local(data["z1"]), local(data["z2"])
    values = fn(a, b, True)
    values[0].backward()
    out[name] = {"values": values.detach(), "grads": [a.grad, b.grad]}
out["sinkhorn"] = sinkhorn_knopp(local(data["scores"]), gather_distributed=True)
out["center"] = update_center(data["center"], [local(data["teacher1"]), local(data["teacher2"])])
queue = EmbeddingQueue(size=6, dim=data["z1"].shape[1], random_init=False).double()
queue.stage(local(data["z1"])[:2])  # two micro-batches of 2 per rank, one commit (gradient accumulation)
queue.stage(local(data["z1"])[2:])
out["queue_written"] = queue.commit(gather_distributed=True)
out["queue"] = {k: v.clone() for k, v in queue.state_dict().items()}
selector = TopKPerClassSelector(NUM_UNLABELED, data["probs"].shape[1], k=2)
out["top_k"] = selector(share(data["index"]), share(data["probs"])).weights
out["top_k_buffers"] = {k: v.clone() for k, v in selector.state_dict().items()}
colorization = tiny_colorization().train()
out["color_weights"] = colorization.pixel_weights(share(data["nearest"]))
colorization.on_optimizer_step(1, 0.5)
out["color_counts"] = colorization.color_counts.clone()
quantizer = tiny_quantizer()
quantizer(local(data["z1"]).float())
out["quantizer_stats"] = quantizer.update()
out["codebook"] = quantizer.codebook.clone()
torch.save(out, f"{sys.argv[2]}/rank{rank}.pt")
dist.destroy_process_group()
"""


NUM_UNLABELED = 12


def tiny_colorization() -> ColorizationForPreTraining:
    backbone, _ = backbone_config_from_spec("resnet-test", image_size=16)
    return ColorizationForPreTraining(ColorizationConfig(backbone_config=backbone))


def tiny_quantizer() -> VectorQuantizer:
    """An EMA codebook of 3 codes (the same initial codes in every process), without the k-means initialisation
    and restarts, which draw from process 0's inputs by design."""
    torch.manual_seed(0)
    return VectorQuantizer(3, 6, decay=0.5, restart_dead_codes=False, kmeans_init_iterations=0).train()


def global_batch():
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    num_bins = tiny_colorization().num_bins
    # colours concentrated on a few bins, differently in each half, so that each half's prior is not the whole's
    nearest = torch.cat([torch.randint(0, 5, (4, 3, 3), generator=g),
                         torch.randint(0, num_bins, (4, 3, 3), generator=g)])
    return {"z1": rand(8, 6), "z2": rand(8, 6) * 2 + 1, "scores": torch.nn.functional.normalize(rand(8, 5), dim=1),
            "center": rand(5), "teacher1": rand(8, 5), "teacher2": rand(8, 5),
            "probs": (rand(8, 3) * 2).softmax(-1).float(), "index": torch.randperm(NUM_UNLABELED, generator=g)[:8],
            "nearest": nearest}


@pytest.fixture(scope="module")
def rank_outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("losses_ddp")
    torch.save(global_batch(), tmp / "batch.pt")
    (tmp / "worker.py").write_text(textwrap.dedent(WORKER))
    torchrun = [shutil.which("torchrun") or "", "--standalone", "--nproc_per_node", str(WORLD_SIZE)]
    if not torchrun[0]:
        torchrun[0:1] = [sys.executable, "-m", "torch.distributed.run"]
    # --standalone picks a free port: another torchrun job on this machine may hold the default 29500
    # the worker imports LOSSES from this module, so that both sides run the very same calls
    path = os.pathsep.join(filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    result = subprocess.run([*torchrun, str(tmp / "worker.py"), str(tmp / "batch.pt"), str(tmp)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def single_process(name):
    data = global_batch()
    a, b = data["z1"].clone().requires_grad_(), data["z2"].clone().requires_grad_()
    values = LOSSES[name](a, b, False)
    values[0].backward()
    return values.detach(), [a.grad, b.grad]


@pytest.mark.parametrize("name", list(LOSSES))
def test_distributed_loss_and_gradients_match_global_batch(rank_outputs, name):
    values, grads = single_process(name)
    ranks = [out[name] for out in rank_outputs]
    rank_values = torch.stack([r["values"] for r in ranks])
    if name == "barlow_twins":
        # C is computed on the gathered batch (the reference all-reduces C and uses SyncBatchNorm):
        # every rank holds the global loss itself
        for r in rank_values:
            torch.testing.assert_close(r, values)
    else:
        # NT-Xent (SimCLR's TPU code: local anchors vs the global candidates), CLIP (open_clip's local loss) and MoCo v3 (local queries vs
        # all keys, labels offset by rank) average over LOCAL anchors; VICReg's invariance is a local MSE
        # (reference `repr_loss` precedes the gather). So each rank holds its share and the MEAN over ranks is
        # the global loss, which is also what HF Trainer logs (it averages the rank losses).
        torch.testing.assert_close(rank_values.mean(dim=0), values)
        assert not torch.allclose(rank_values[0, 0], rank_values[1, 0])  # the shares differ: a real check
    if name == "vicreg":  # variance and covariance are global-batch statistics: equal on every rank
        for r in rank_values:
            torch.testing.assert_close(r[2:], values[2:])
    # local gradients = WORLD_SIZE x the global-batch gradient (see the module docstring); DDP divides by it
    # (a per-example mean's local gradient is (1 / (N / WORLD_SIZE)) x the term's: the same factor)
    for i, grad in enumerate(grads):
        if grad is None:  # a target: no gradient, on any rank
            assert all(r["grads"][i] is None for r in ranks)
            continue
        torch.testing.assert_close(torch.cat([r["grads"][i] for r in ranks]), WORLD_SIZE * grad)


def test_distributed_sinkhorn_codes_and_dino_center_match_global_batch(rank_outputs):
    data = global_batch()
    codes = torch.cat([out["sinkhorn"] for out in rank_outputs])
    torch.testing.assert_close(codes, sinkhorn_knopp(data["scores"]))
    # the local call alone would equipartition each half separately: a different answer
    assert not torch.allclose(rank_outputs[0]["sinkhorn"], sinkhorn_knopp(data["scores"].chunk(2)[0]))
    expected = update_center(data["center"], [data["teacher1"], data["teacher2"]])
    for out in rank_outputs:  # every rank gets the center of the global batch
        torch.testing.assert_close(out["center"], expected)


def test_distributed_queue_commit_enqueues_every_rank_in_rank_order(rank_outputs):
    # 8 keys (rank 0's 4 then rank 1's 4) into a queue of 6: the newest 6 are kept, written from position 0
    keys = global_batch()["z1"]
    for out in rank_outputs:  # every rank holds the same queue
        assert out["queue_written"] == 6
        torch.testing.assert_close(out["queue"]["embeddings"], keys[2:])
        assert int(out["queue"]["pointer"]) == 0 and int(out["queue"]["num_filled"]) == 6


def test_distributed_top_k_selection_and_colour_prior_match_global_batch(rank_outputs):
    data = global_batch()
    selector = TopKPerClassSelector(NUM_UNLABELED, data["probs"].shape[1], k=2)
    expected = selector(data["index"], data["probs"]).weights
    torch.testing.assert_close(torch.cat([out["top_k"] for out in rank_outputs]), expected)
    for out in rank_outputs:  # every rank recorded every example of the global batch
        for name, buffer in selector.state_dict().items():
            torch.testing.assert_close(out["top_k_buffers"][name], buffer)
    alone = TopKPerClassSelector(NUM_UNLABELED, data["probs"].shape[1], k=2)
    # a real check: rank 1's examples judged among its own alone would keep others
    assert not torch.equal(alone(data["index"][4:], data["probs"][4:]).weights, expected[4:])

    colorization = tiny_colorization().train()
    weights = colorization.pixel_weights(data["nearest"])
    colorization.on_optimizer_step(1, 0.5)
    torch.testing.assert_close(torch.cat([out["color_weights"] for out in rank_outputs]), weights)
    for out in rank_outputs:
        assert torch.equal(out["color_counts"], colorization.color_counts)
    alone = tiny_colorization().train()
    assert not torch.allclose(alone.pixel_weights(data["nearest"][:4]), weights[:4])


def test_distributed_codebook_ema_matches_global_batch(rank_outputs):
    """BEiT's visual tokenizer: the EMA step of the codebook uses the code counts and sums of every process."""
    quantizer = tiny_quantizer()
    quantizer(global_batch()["z1"].float())
    stats = quantizer.update()
    for out in rank_outputs:
        torch.testing.assert_close(out["codebook"], quantizer.codebook)
        assert out["quantizer_stats"] == pytest.approx(stats)
    alone = tiny_quantizer()
    alone(global_batch()["z1"][:4].float())
    alone.update()
    assert not torch.allclose(alone.codebook, quantizer.codebook)
