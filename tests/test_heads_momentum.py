"""hf_ssl.nn.heads and hf_ssl.nn.momentum: the papers' layer lists, DINO's normalised head, SwAV's prototypes,
EMA against an element-wise loop, and the schedules against their formulas."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hf_ssl.nn.heads import DINOHead, ProjectionHead, Prototypes
from hf_ssl.nn.momentum import copy_frozen, cosine_momentum, cosine_schedule, ema_update


def layers(head: nn.Module) -> list[str]:
    """A head's layers as short strings: L(in,out) / L(in,out,nobias), BN(d) / BN(d,noaffine), ReLU."""
    out = []
    for m in head:
        if isinstance(m, nn.Linear):
            out.append(f"L({m.in_features},{m.out_features}{'' if m.bias is not None else ',nobias'})")
        elif isinstance(m, nn.BatchNorm1d):
            out.append(f"BN({m.num_features}{'' if m.affine else ',noaffine'})")
        else:
            out.append(type(m).__name__)
    return out


# the papers' heads at their default sizes (built on the meta device: Barlow Twins' is 134M parameters)
PAPER_HEADS = {
    # SimCLR: W2 ReLU(BN(W1 h)), 2048 -> 2048 -> 128
    "simclr": (lambda: ProjectionHead.simclr(2048), ["L(2048,2048,nobias)", "BN(2048)", "ReLU", "L(2048,128)"]),
    # MoCo v2: 2-layer MLP without BN
    "moco_v2": (lambda: ProjectionHead.moco_v2(2048), ["L(2048,2048)", "ReLU", "L(2048,128)"]),
    # MoCo v3 (reference _build_mlp): no biases, BN everywhere, output BN without affine on the projector only
    "moco_v3_projector": (lambda: ProjectionHead.moco_v3_projector(768), [
        "L(768,4096,nobias)", "BN(4096)", "ReLU", "L(4096,4096,nobias)", "BN(4096)", "ReLU",
        "L(4096,256,nobias)", "BN(256,noaffine)"]),
    "moco_v3_predictor": (lambda: ProjectionHead.moco_v3_predictor(), [
        "L(256,4096,nobias)", "BN(4096)", "ReLU", "L(4096,256,nobias)"]),
    # BYOL: Linear 4096, BN, ReLU, Linear 256 (projector from 2048, predictor from 256)
    "byol": (lambda: ProjectionHead.byol(2048), ["L(2048,4096,nobias)", "BN(4096)", "ReLU", "L(4096,256)"]),
    "byol_predictor": (lambda: ProjectionHead.byol(256), ["L(256,4096,nobias)", "BN(4096)", "ReLU", "L(4096,256)"]),
    # SimSiam: BN on every projector layer incl. the output (no ReLU there); predictor 2048 -> 512 -> 2048
    "simsiam_projector": (lambda: ProjectionHead.simsiam_projector(2048), [
        "L(2048,2048,nobias)", "BN(2048)", "ReLU", "L(2048,2048,nobias)", "BN(2048)", "ReLU",
        "L(2048,2048,nobias)", "BN(2048,noaffine)"]),
    "simsiam_predictor": (lambda: ProjectionHead.simsiam_predictor(), [
        "L(2048,512,nobias)", "BN(512)", "ReLU", "L(512,2048)"]),
    # Barlow Twins / VICReg: 8192-8192-8192, BN + ReLU on the hidden layers, bias-free output
    "barlow_twins": (lambda: ProjectionHead.barlow_twins(2048), [
        "L(2048,8192,nobias)", "BN(8192)", "ReLU", "L(8192,8192,nobias)", "BN(8192)", "ReLU", "L(8192,8192,nobias)"]),
    "vicreg": (lambda: ProjectionHead.vicreg(2048), [
        "L(2048,8192,nobias)", "BN(8192)", "ReLU", "L(8192,8192,nobias)", "BN(8192)", "ReLU", "L(8192,8192,nobias)"]),
}


@pytest.mark.parametrize("name", PAPER_HEADS)
def test_paper_heads_match_layer_lists(name):
    build, expected = PAPER_HEADS[name]
    with torch.device("meta"):
        head = build()
    assert layers(head) == expected


def test_projection_head_shapes_and_batch_norm():
    x = torch.randn(6, 12)
    for head in [ProjectionHead(12, 16, 5), ProjectionHead(12, 16, 5, num_layers=3, batch_norm=False),
                 ProjectionHead.simsiam_projector(12, 16, 5), ProjectionHead(12, 16, 5, num_layers=1)]:
        assert head(x).shape == (6, 5)
    assert layers(ProjectionHead(12, 16, 5, num_layers=1)) == ["L(12,5)"]
    # the output BN of SimSiam's projector standardises each output dimension over the batch
    z = ProjectionHead.simsiam_projector(12, 16, 5).train()(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(0, unbiased=False), torch.ones(5), atol=1e-3, rtol=0)


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_dino_head_normalises_bottleneck_and_last_layer(norm_last_layer):
    torch.manual_seed(0)
    head = DINOHead(12, output_dim=40, hidden_dim=16, bottleneck_dim=8, norm_last_layer=norm_last_layer)
    assert [type(m).__name__ for m in head.mlp] == ["Linear", "GELU", "Linear", "GELU", "Linear"]
    x = torch.randn(5, 12)
    gain = head.last_layer.parametrizations.weight.original0
    direction = head.last_layer.parametrizations.weight.original1
    assert gain.requires_grad is not norm_last_layer
    # a few optimizer steps move v (and g when trainable); the rows of W stay unit vectors only with g frozen
    opt = torch.optim.SGD(head.parameters(), lr=1.0)
    for _ in range(3):
        opt.zero_grad()
        head(x)[:, 0].sum().backward()
        opt.step()
    row_norms = head.last_layer.weight.norm(dim=1)
    if norm_last_layer:
        torch.testing.assert_close(row_norms, torch.ones(40))
        assert torch.equal(gain, torch.ones_like(gain))
    else:
        assert not torch.allclose(row_norms, torch.ones(40))
    # output = (L2-normalised bottleneck) @ (g * v / |v|)^T; with g = 1 these are cosines in [-1, 1]
    expected = F.normalize(head.mlp(x), dim=-1) @ (gain * F.normalize(direction, dim=1)).T
    torch.testing.assert_close(head(x), expected)
    if norm_last_layer:
        assert head(x * 100).abs().max() <= 1 + 1e-6


def test_prototypes_normalize_in_place():
    protos = Prototypes(6, 10)
    torch.testing.assert_close(protos.weight.norm(dim=1), torch.ones(10))  # normalised at construction
    param, ptr = protos.weight, protos.weight.data_ptr()
    with torch.no_grad():
        protos.weight.mul_(torch.rand(10, 1) * 5 + 0.1)
    directions = F.normalize(protos.weight.detach().clone(), dim=1)
    protos.normalize_()
    assert protos.weight is param and protos.weight.data_ptr() == ptr  # same Parameter: optimizer state stays
    torch.testing.assert_close(protos.weight.detach(), directions)
    z = F.normalize(torch.randn(4, 6), dim=1)
    torch.testing.assert_close(protos(z), z @ directions.T)  # scores are cosines


def test_ema_update_matches_loop_formula():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online(torch.randn(8, 3))  # moves BN running stats and num_batches_tracked
    target = copy_frozen(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    m = 0.9
    ema_update(target, online, m)
    for name, param in online.named_parameters():
        new, old, src = target.get_parameter(name).flatten().tolist(), before[name].flatten().tolist(), param.flatten()
        for a, b, c in zip(new, old, src.tolist()):
            assert math.isclose(a, m * b + (1 - m) * c, rel_tol=1e-6, abs_tol=1e-7)
    for name, buffer in online.named_buffers():
        assert torch.equal(target.get_buffer(name), buffer)
    assert target[1].num_batches_tracked.item() == 1
    with pytest.raises(ValueError):
        ema_update(nn.Linear(3, 4), nn.Linear(3, 5, bias=False), m)


def test_ema_update_can_keep_the_targets_own_buffers():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online(torch.randn(8, 3))
    target = copy_frozen(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)))
    buffers = {k: v.clone() for k, v in target.named_buffers()}
    weight = target[0].weight.clone()
    ema_update(target, online, 0.5, copy_buffers=False)
    for name, buffer in target.named_buffers():  # DINO's teacher keeps its own BatchNorm statistics
        assert torch.equal(buffer, buffers[name]), name
    torch.testing.assert_close(target[0].weight, 0.5 * weight + 0.5 * online[0].weight)


def test_cosine_momentum_formula():
    K, base = 100, 0.996
    assert cosine_momentum(0, K, base) == pytest.approx(base)
    assert cosine_momentum(K, K, base) == pytest.approx(1.0)
    assert cosine_momentum(K / 2, K, base) == pytest.approx(1 - (1 - base) / 2)
    for k in [1, 17, 63, 99]:
        assert cosine_momentum(k, K, base) == pytest.approx(1 - (1 - base) * (math.cos(math.pi * k / K) + 1) / 2)
    assert cosine_momentum(2 * K, K, base) == pytest.approx(1.0)  # clamped after the end
    assert cosine_momentum(K, K, 0.99, final=0.999) == pytest.approx(0.999)


def test_cosine_schedule_warmup_and_dino_teacher_temperature():
    # DINO's teacher temperature: 0.04 -> 0.07 linearly over 30 epochs, then constant
    temps = [cosine_schedule(e, 100, 0.07, 0.07, warmup_steps=30, warmup_start=0.04) for e in range(101)]
    assert temps[0] == pytest.approx(0.04) and temps[15] == pytest.approx(0.055)
    assert all(t == pytest.approx(0.07) for t in temps[30:])
    # learning rate: 0 -> start over the warm-up, then a half cosine to end
    assert cosine_schedule(0, 110, 1.0, 0.1, warmup_steps=10) == 0.0
    assert cosine_schedule(5, 110, 1.0, 0.1, warmup_steps=10) == pytest.approx(0.5)
    assert cosine_schedule(10, 110, 1.0, 0.1, warmup_steps=10) == pytest.approx(1.0)
    assert cosine_schedule(60, 110, 1.0, 0.1, warmup_steps=10) == pytest.approx(0.55)
    assert cosine_schedule(110, 110, 1.0, 0.1, warmup_steps=10) == pytest.approx(0.1)
    quarter = 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2
    assert cosine_schedule(35, 110, 1.0, 0.1, warmup_steps=10) == pytest.approx(quarter)
    assert cosine_schedule(0, 100, 1.0, 0.1) == pytest.approx(1.0)  # no warm-up


def test_copy_frozen_has_no_grads():
    online = DINOHead(6, output_dim=12, hidden_dim=8, bottleneck_dim=4)
    frozen = copy_frozen(online)
    assert all(not p.requires_grad for p in frozen.parameters())
    assert any(p.requires_grad for p in online.parameters())  # the original is untouched
    for a, b in zip(online.parameters(), frozen.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    x = torch.randn(3, 6, requires_grad=True)
    frozen(x).sum().backward()
    assert all(p.grad is None for p in frozen.parameters()) and x.grad is not None
