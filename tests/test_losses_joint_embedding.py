"""Joint-embedding losses against straightforward float64 loop implementations of the papers' formulas.

The references below work on Python floats (`.tolist()`, math.exp / math.log) with explicit loops over samples,
pairs and dimensions, and use the papers' own index conventions (e.g. SimCLR's interleaved 2k-1 / 2k views,
SwAV's K x B code matrix), so they share no code path with the vectorised implementations.
"""

import math

import pytest
import torch
from torch.autograd import gradcheck

from hf_ssl.losses.barlow_twins import barlow_twins_loss
from hf_ssl.losses.dino import dino_loss, update_center
from hf_ssl.losses.info_nce import info_nce_loss
from hf_ssl.losses.negative_cosine import byol_loss, negative_cosine_similarity
from hf_ssl.losses.nt_xent import nt_xent_loss
from hf_ssl.losses.swav import sinkhorn_knopp, swav_loss
from hf_ssl.losses.vicreg import vicreg_loss

SHAPES = [(2, 3), (5, 8), (8, 16)]


def randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def dot(a, b):
    return math.fsum(x * y for x, y in zip(a, b))


def cos(a, b):
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def mean(values):
    values = list(values)
    return math.fsum(values) / len(values)


def log_softmax(row, tau):
    m = max(row)
    log_z = m / tau + math.log(math.fsum(math.exp((x - m) / tau) for x in row))
    return [x / tau - log_z for x in row]


def close(value, reference, tol=1e-9):
    assert float(value) == pytest.approx(reference, rel=tol, abs=tol)


# ------------------------------------------------------------------ SimCLR NT-Xent (Alg. 1)
def ref_nt_xent(z1, z2, tau):
    z = [v for pair in zip(z1.tolist(), z2.tolist()) for v in pair]  # z_{2k-1}, z_{2k} (0-based: 2k, 2k+1)

    def ell(i, j):
        denominator = math.fsum(math.exp(cos(z[i], z[k]) / tau) for k in range(len(z)) if k != i)
        return -math.log(math.exp(cos(z[i], z[j]) / tau) / denominator)

    return math.fsum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(len(z1))) / len(z)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_loop_reference(shape, tau):
    z1, z2 = randn(*shape, seed=1), randn(*shape, seed=2, scale=3.0)  # scale: cosine must ignore norms
    close(nt_xent_loss(z1, z2, temperature=tau), ref_nt_xent(z1, z2, tau))


# ------------------------------------------------------------------ MoCo InfoNCE
def ref_info_nce(q, k, queue, tau, scale):
    q, k = q.tolist(), k.tolist()
    losses = []
    for i in range(len(q)):
        if queue is None:
            candidates, positive = k, i  # MoCo v3: keys of the batch, positive on the diagonal
        else:
            candidates, positive = [k[i], *queue.tolist()], 0  # MoCo v2: [k+, queue]
        logits = log_softmax([cos(q[i], c) for c in candidates], tau)
        losses.append(-logits[positive])
    return mean(losses) * (2 * tau if scale else 1.0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tau", [0.07, 0.2, 1.0])
@pytest.mark.parametrize("queue_size", [None, 7])
def test_info_nce_matches_loop_reference(shape, tau, queue_size):
    q, k = randn(*shape, seed=3), randn(*shape, seed=4, scale=2.0)
    queue = None if queue_size is None else randn(queue_size, shape[1], seed=5)
    for scale in (False, True):
        close(info_nce_loss(q, k, queue, temperature=tau, scale_by_temperature=scale),
              ref_info_nce(q, k, queue, tau, scale))


def test_info_nce_refuses_queue_with_gather():
    with pytest.raises(ValueError, match="queue"):
        info_nce_loss(randn(2, 3), randn(2, 3), queue=randn(4, 3), gather_distributed=True)


# ------------------------------------------------------------------ SimSiam / BYOL
@pytest.mark.parametrize("shape", SHAPES)
def test_negative_cosine_and_byol_match_loop_reference(shape):
    p, z = randn(*shape, seed=6), randn(*shape, seed=7, scale=0.3)
    cosines = [cos(a, b) for a, b in zip(p.tolist(), z.tolist())]
    close(negative_cosine_similarity(p, z), -mean(cosines))
    close(byol_loss(p, z), mean(2 - 2 * c for c in cosines))
    # BYOL's form as written in the paper: squared distance of the l2-normalised vectors
    unit = lambda v: [x / math.sqrt(dot(v, v)) for x in v]  # noqa: E731
    close(byol_loss(p, z), mean(sum((a - b) ** 2 for a, b in zip(unit(u), unit(v)))
                                for u, v in zip(p.tolist(), z.tolist())))


@pytest.mark.parametrize("loss_fn", [negative_cosine_similarity, byol_loss])
def test_stop_gradient_on_target(loss_fn):
    p, z = randn(4, 5, seed=8).requires_grad_(), randn(4, 5, seed=9).requires_grad_()
    loss_fn(p, z).backward()
    assert z.grad is None  # stop-gradient: nothing reaches the target branch
    assert p.grad is not None and p.grad.abs().sum() > 0


# ------------------------------------------------------------------ SwAV
def ref_sinkhorn(scores, eps, iterations):
    """The reference `distributed_sinkhorn` in one process: Q is K x B (prototypes x samples), no shift."""
    s = scores.tolist()
    batch, prototypes = len(s), len(s[0])
    q = [[math.exp(s[b][k] / eps) for b in range(batch)] for k in range(prototypes)]
    total = math.fsum(map(math.fsum, q))
    q = [[x / total for x in row] for row in q]
    for _ in range(iterations):
        for k in range(prototypes):
            row_sum = math.fsum(q[k])
            q[k] = [x / row_sum / prototypes for x in q[k]]
        for b in range(batch):
            col_sum = math.fsum(q[k][b] for k in range(prototypes))
            for k in range(prototypes):
                q[k][b] = q[k][b] / col_sum / batch
    return [[q[k][b] * batch for k in range(prototypes)] for b in range(batch)]  # back to B x K


@pytest.mark.parametrize("shape", [(4, 3), (6, 10), (16, 5)])
@pytest.mark.parametrize("eps,iterations", [(0.05, 3), (0.1, 1), (0.5, 10)])
def test_sinkhorn_matches_loop_reference_and_rows_sum_to_one(shape, eps, iterations):
    scores = torch.nn.functional.normalize(randn(*shape, seed=10), dim=1)  # cosine-like, as in SwAV
    codes = sinkhorn_knopp(scores, epsilon=eps, iterations=iterations)
    assert codes.grad_fn is None
    torch.testing.assert_close(codes, torch.tensor(ref_sinkhorn(scores, eps, iterations), dtype=torch.float64),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(shape[0], dtype=torch.float64))


def test_sinkhorn_equipartition_after_iterations():
    batch, prototypes = 12, 4
    scores = randn(batch, prototypes, seed=11, scale=0.5).requires_grad_()
    for iterations, tol in [(3, 0.15), (100, 1e-8)]:
        codes = sinkhorn_knopp(scores, epsilon=0.2, iterations=iterations)
        # each prototype receives B / K samples' worth of mass
        torch.testing.assert_close(codes.sum(dim=0), torch.full((prototypes,), batch / prototypes,
                                   dtype=torch.float64), rtol=tol, atol=tol)
        torch.testing.assert_close(codes.sum(dim=1), torch.ones(batch, dtype=torch.float64))


def test_sinkhorn_float32_with_large_scores_does_not_overflow():
    # exp(6 / 0.05) overflows float32 (the reference code would return NaN): the shift by the global
    # maximum must cancel exactly and keep the result finite
    scores = 5.0 + torch.nn.functional.normalize(randn(8, 6, seed=12), dim=1)
    codes = sinkhorn_knopp(scores.float(), epsilon=0.05)
    assert codes.dtype == torch.float32 and torch.isfinite(codes).all()
    torch.testing.assert_close(codes, torch.tensor(ref_sinkhorn(scores, 0.05, 3), dtype=torch.float32),
                               rtol=1e-4, atol=1e-5)


def ref_swav(scores, codes, tau):
    total = []
    for i, q in codes.items():
        q = q.tolist()
        sub = []
        for v in range(len(scores)):
            if v == i:
                continue
            rows = scores[v].tolist()
            sub.append(mean(-math.fsum(qk * lp for qk, lp in zip(q[b], log_softmax(rows[b], tau)))
                            for b in range(len(rows))))
        total.append(mean(sub))
    return mean(total)


@pytest.mark.parametrize("n_views,code_views", [(2, (0, 1)), (5, (0, 1)), (3, (1,))])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_swav_loss_matches_loop_reference(n_views, code_views, tau):
    scores = [randn(6, 4, seed=20 + v) for v in range(n_views)]
    codes = {i: sinkhorn_knopp(scores[i]) for i in code_views}
    close(swav_loss(scores, codes, temperature=tau), ref_swav(scores, codes, tau))


def test_swav_codes_get_no_gradient_and_gradcheck():
    scores = [randn(4, 3, seed=30 + v).requires_grad_() for v in range(3)]
    codes = {0: torch.softmax(randn(4, 3, seed=33), dim=1).requires_grad_()}
    swav_loss(scores, codes).backward()
    assert codes[0].grad is None and scores[1].grad is not None and scores[0].grad is None  # view 0 only codes
    assert gradcheck(lambda *s: swav_loss(list(s), {0: codes[0].detach(), 2: codes[0].detach().flip(0)}),
                     tuple(t.detach().requires_grad_() for t in scores))


# ------------------------------------------------------------------ VICReg
def ref_vicreg(z1, z2, lam, mu, nu, gamma, eps):
    a, b = z1.tolist(), z2.tolist()
    n, dim = len(a), len(a[0])
    invariance = math.fsum((a[i][d] - b[i][d]) ** 2 for i in range(n) for d in range(dim)) / (n * dim)

    def column(z, d):
        return [z[i][d] for i in range(n)]

    def cov(z, d1, d2):
        x, y = column(z, d1), column(z, d2)
        mx, my = mean(x), mean(y)
        return math.fsum((x[i] - mx) * (y[i] - my) for i in range(n)) / (n - 1)

    def variance(z):
        return mean(max(0.0, gamma - math.sqrt(cov(z, d, d) + eps)) for d in range(dim))

    def covariance(z):
        return math.fsum(cov(z, d1, d2) ** 2 for d1 in range(dim) for d2 in range(dim) if d1 != d2) / dim

    v, c = variance(a) + variance(b), covariance(a) + covariance(b)
    return lam * invariance + mu * v + nu * c, invariance, v, c


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weights,gamma", [((25.0, 25.0, 1.0), 1.0), ((1.0, 2.0, 3.0), 2.0)])
def test_vicreg_matches_loop_reference(shape, weights, gamma):
    z1, z2 = randn(*shape, seed=40, scale=0.8), randn(*shape, seed=41, scale=1.5)
    result = vicreg_loss(z1, z2, *weights, gamma=gamma)
    for value, reference in zip(result, ref_vicreg(z1, z2, *weights, gamma, 1e-4)):
        close(value, reference)


def test_vicreg_collapsed_inputs_pay_gamma_per_dimension():
    z = randn(1, 6, seed=42).expand(5, 6).contiguous()  # every sample has the same embedding
    for gamma in (1.0, 2.5):
        exact = vicreg_loss(z, z, gamma=gamma, eps=0.0)
        close(exact.variance, 2 * gamma)  # gamma for every dimension, mean over dims, both branches
        close(exact.invariance, 0.0)
        close(exact.covariance, 0.0)
        close(vicreg_loss(z, z, gamma=gamma).variance, 2 * (gamma - 1e-2))  # std floor sqrt(eps) = 0.01


# ------------------------------------------------------------------ Barlow Twins
def ref_barlow(z1, z2, lam, eps=1e-5):
    a, b = z1.tolist(), z2.tolist()
    n, dim = len(a), len(a[0])

    def standardised(z):
        out = [[0.0] * dim for _ in range(n)]
        for d in range(dim):
            col = [z[i][d] for i in range(n)]
            m = mean(col)
            var = mean((x - m) ** 2 for x in col)  # biased, as BatchNorm1d in training mode
            for i in range(n):
                out[i][d] = (col[i] - m) / math.sqrt(var + eps)
        return out

    a, b = standardised(a), standardised(b)
    c = [[math.fsum(a[k][i] * b[k][j] for k in range(n)) / n for j in range(dim)] for i in range(dim)]
    return (math.fsum((1 - c[i][i]) ** 2 for i in range(dim))
            + lam * math.fsum(c[i][j] ** 2 for i in range(dim) for j in range(dim) if i != j))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lam", [5e-3, 0.5])
def test_barlow_twins_matches_loop_reference(shape, lam):
    z1, z2 = randn(*shape, seed=50), randn(*shape, seed=51, scale=2.0) + 1.0
    close(barlow_twins_loss(z1, z2, lambda_offdiag=lam), ref_barlow(z1, z2, lam))


def test_barlow_twins_identical_decorrelated_inputs_give_zero():
    hadamard = torch.tensor([[1.0]], dtype=torch.float64)
    for _ in range(3):
        hadamard = torch.cat([torch.cat([hadamard, hadamard], 1), torch.cat([hadamard, -hadamard], 1)])
    z = hadamard[:, 1:6]  # 8 samples, 5 zero-mean orthogonal +-1 columns: C = identity
    assert barlow_twins_loss(z, z) < 1e-8
    assert barlow_twins_loss(3 * z + 2, z) < 1e-8  # per-dimension standardisation removes scale and shift
    assert barlow_twins_loss(z, z[:, [1, 0, 2, 3, 4]]) > 1.9  # swapped dimensions: two diagonal misses


# ------------------------------------------------------------------ DINO
def ref_dino(students, teachers, center, tau_s, tau_t):
    c = center.reshape(-1).tolist()
    terms = []
    for t_index, teacher in enumerate(teachers):
        for s_index, student in enumerate(students):
            if s_index == t_index:
                continue
            per_sample = []
            for t_row, s_row in zip(teacher.tolist(), student.tolist()):
                p_t = [math.exp(x) for x in log_softmax([x - ck for x, ck in zip(t_row, c)], tau_t)]
                per_sample.append(-math.fsum(p * lp for p, lp in zip(p_t, log_softmax(s_row, tau_s))))
            terms.append(mean(per_sample))
    return mean(terms)


@pytest.mark.parametrize("n_local", [0, 1, 4])
@pytest.mark.parametrize("temps", [(0.1, 0.04), (0.2, 0.07)])
def test_dino_loss_matches_loop_reference(n_local, temps):
    students = [randn(3, 7, seed=60 + v) for v in range(2 + n_local)]
    teachers = [randn(3, 7, seed=70 + v) for v in range(2)]
    center = randn(1, 7, seed=80, scale=0.1)
    close(dino_loss(students, teachers, center, *temps), ref_dino(students, teachers, center, *temps))


def test_dino_teacher_gets_no_gradient_and_center_update():
    students = [randn(3, 5, seed=90 + v).requires_grad_() for v in range(4)]
    teachers = [randn(3, 5, seed=95 + v).requires_grad_() for v in range(2)]
    center = randn(5, seed=99)
    dino_loss(students, teachers, center).backward()
    assert all(t.grad is None for t in teachers) and all(s.grad is not None for s in students)
    new = update_center(center, teachers, momentum=0.9)
    rows = [row for t in teachers for row in t.tolist()]
    expected = [0.9 * c + 0.1 * mean(row[k] for row in rows) for k, c in enumerate(center.tolist())]
    torch.testing.assert_close(new, torch.tensor(expected, dtype=torch.float64))
    assert new.grad_fn is None


def test_gather_flag_is_identity_in_a_single_process():
    a, b = randn(4, 3, seed=120), randn(4, 3, seed=121)
    for fn in (nt_xent_loss, info_nce_loss, lambda x, y, **kw: vicreg_loss(x, y, **kw).loss, barlow_twins_loss,
               lambda x, y, **kw: sinkhorn_knopp(x, **kw)):
        torch.testing.assert_close(fn(a, b, gather_distributed=True), fn(a, b), rtol=0, atol=0)


# ------------------------------------------------------------------ gradients (float64, small inputs)
QUEUE, TARGET, CENTER = randn(5, 4, seed=100), randn(3, 4, seed=101), randn(4, seed=104)
TEACHERS = [randn(3, 4, seed=102), randn(3, 4, seed=103)]


@pytest.mark.parametrize("name,fn,n_inputs", [
    ("nt_xent", lambda a, b: nt_xent_loss(a, b, temperature=0.3), 2),
    ("info_nce_v3", lambda q, k: info_nce_loss(q, k, temperature=0.2, scale_by_temperature=True), 2),
    ("info_nce_v2", lambda q, k: info_nce_loss(q, k, queue=QUEUE, temperature=0.2), 2),
    ("simsiam", lambda p: negative_cosine_similarity(p, TARGET), 1),
    ("byol", lambda p: byol_loss(p, TARGET), 1),
    ("vicreg", lambda a, b: vicreg_loss(a, b, gamma=1.2).loss, 2),
    ("barlow_twins", lambda a, b: barlow_twins_loss(a, b, lambda_offdiag=0.1), 2),
    ("dino", lambda s0, s1: dino_loss([s0, s1, s0 * 2], TEACHERS, CENTER), 2),
])
def test_gradcheck(name, fn, n_inputs):
    inputs = tuple(randn(3, 4, seed=110 + i).requires_grad_() for i in range(n_inputs))
    assert gradcheck(fn, inputs)
