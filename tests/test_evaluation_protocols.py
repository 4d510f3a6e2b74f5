"""Tests of the frozen-feature evaluation protocols: weighted kNN and the linear probe."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from hf_ssl.evaluation.knn import knn_accuracy, knn_predict
from hf_ssl.evaluation.linear_probe import LinearProbeResult, _fit, linear_probe

# ----------------------------------------------------------------------------- kNN


def _reference_knn(train, labels, queries, num_classes, k, temperature):
    """Straightforward float64 kNN: explicit loops over queries and neighbours.

    Returns predictions and, per query, the smallest gap that decides it (between
    the k-th and (k+1)-th similarity, and between the winning and runner-up
    scores) so the caller can check the data has no float32-fragile near-ties.
    """
    train = [[float(v) for v in row] for row in train.double()]
    queries = [[float(v) for v in row] for row in queries.double()]
    labels = [int(v) for v in labels]
    norm = lambda v: math.sqrt(sum(a * a for a in v))  # noqa: E731
    k = min(k, len(train))
    preds, gaps = [], []
    for q in queries:
        sims = [sum(a * b for a, b in zip(q, t)) / (norm(q) * norm(t)) for t in train]
        order = sorted(range(len(train)), key=lambda i: -sims[i])
        gap = sims[order[k - 1]] - sims[order[k]] if k < len(train) else math.inf
        votes = [0.0] * num_classes
        sim_sums = [0.0] * num_classes
        for i in order[:k]:
            votes[labels[i]] += 1.0 if temperature is None else math.exp(sims[i] / temperature)
            sim_sums[labels[i]] += sims[i]
        if temperature is None:  # count, then summed similarity, then smallest index
            key = lambda c: (votes[c], sim_sums[c], -c)  # noqa: E731
            ranked = sorted(range(num_classes), key=key, reverse=True)
            if votes[ranked[0]] == votes[ranked[1]]:
                gap = min(gap, sim_sums[ranked[0]] - sim_sums[ranked[1]])
        else:
            ranked = sorted(range(num_classes), key=lambda c: (votes[c], -c), reverse=True)
            gap = min(gap, (votes[ranked[0]] - votes[ranked[1]]) / votes[ranked[0]])
        preds.append(ranked[0])
        gaps.append(gap)
    return torch.tensor(preds), min(gaps)


@pytest.fixture(scope="module")
def knn_data():
    g = torch.Generator().manual_seed(0)
    num_classes = 5
    centers = torch.randn(num_classes, 16, generator=g)
    y_train = torch.randint(0, num_classes, (150,), generator=g)
    y_query = torch.randint(0, num_classes, (40,), generator=g)
    # Overlapping clusters so votes are genuinely mixed (and count ties occur).
    x_train = centers[y_train] + 1.5 * torch.randn(150, 16, generator=g)
    x_query = centers[y_query] + 1.5 * torch.randn(40, 16, generator=g)
    return x_train, y_train, x_query, num_classes


@pytest.mark.parametrize("temperature", [0.07, 0.5, None])
@pytest.mark.parametrize("k", [1, 4, 20])
def test_knn_matches_reference(knn_data, k, temperature):
    x_train, y_train, x_query, num_classes = knn_data
    expected, gap = _reference_knn(x_train, y_train, x_query, num_classes, k, temperature)
    assert gap > 1e-5, "fixture has a near-tie; predictions would be float32-fragile"
    got = knn_predict(x_train, y_train, x_query, num_classes, k=k, temperature=temperature)
    assert got.dtype == torch.int64 and got.shape == (40,)
    assert torch.equal(got, expected)


def test_knn_unweighted_exercises_tie_rule(knn_data):
    # Guard that the reference comparison above really covers count ties.
    x_train, y_train, x_query, num_classes = knn_data
    sims = F.normalize(x_query, dim=1) @ F.normalize(x_train, dim=1).T
    counts = F.one_hot(y_train[sims.topk(4, dim=1).indices], num_classes).sum(1)
    top2 = counts.topk(2, dim=1).values
    assert (top2[:, 0] == top2[:, 1]).any()


def _unit(deg: float, scale: float = 1.0) -> list[float]:
    return [scale * math.cos(math.radians(deg)), scale * math.sin(math.radians(deg))]


def test_knn_hand_checked_2d():
    # Query along +x. Neighbours by cosine: class 1 at 0 deg (sim 1), class 0 at
    # +-60 deg (sim 0.5 each), class 2 at 180 deg (sim -1). Norms vary on purpose:
    # only directions may matter.
    train = torch.tensor([_unit(0, 3.0), _unit(60, 0.2), _unit(-60, 10.0), _unit(180, 1.0)])
    labels = torch.tensor([1, 0, 0, 2])
    query = torch.tensor([_unit(0, 0.5)])

    def pred(k, temperature):
        return knn_predict(train, labels, query, num_classes=3, k=k, temperature=temperature).item()

    assert pred(1, None) == 1
    assert pred(3, None) == 0  # 2 votes vs 1
    assert pred(3, 0.07) == 1  # e^(1/.07) > 2 e^(.5/.07)
    assert pred(3, 1.0) == 0  # e^1 = 2.72 < 2 e^.5 = 3.30
    assert pred(4, None) == 0
    # Count tie 1-1 between classes 1 and 0 (only one class-0 point in reach):
    # the larger summed similarity (class 1) wins, not the smaller index.
    assert knn_predict(train[[0, 1, 3]], labels[[0, 1, 3]], query, 3, k=2, temperature=None).item() == 1
    # A very small temperature must not overflow into NaN votes.
    assert pred(3, 1e-4) == 1


def test_knn_chunking_invariance(knn_data):
    x_train, y_train, x_query, num_classes = knn_data
    for temperature in (0.07, None):
        full = knn_predict(x_train, y_train, x_query, num_classes, k=7, temperature=temperature, chunk_size=4096)
        for chunk in (1, 3, 39):
            chunked = knn_predict(
                x_train, y_train, x_query, num_classes, k=7, temperature=temperature, chunk_size=chunk
            )
            assert torch.equal(full, chunked)


def test_knn_k_larger_than_train_is_clamped(knn_data):
    x_train, y_train, x_query, num_classes = knn_data
    n = x_train.shape[0]
    for temperature in (0.5, None):
        clamped = knn_predict(x_train, y_train, x_query, num_classes, k=10 * n, temperature=temperature)
        exact = knn_predict(x_train, y_train, x_query, num_classes, k=n, temperature=temperature)
        assert torch.equal(clamped, exact)
    # Hand case: the query's nearest point is class 1, two far ones are class 0.
    # k=2 ties 1-1 and class 1 wins on similarity; only if all 3 vote does class 0 win.
    train = torch.tensor([_unit(0), _unit(120), _unit(-120)])
    labels, query = torch.tensor([1, 0, 0]), torch.tensor([_unit(10)])
    assert knn_predict(train, labels, query, 2, k=2, temperature=None).item() == 1
    assert knn_predict(train, labels, query, 2, k=100, temperature=None).item() == 0
    # With every training point voting unweighted, the majority class always wins.
    majority = torch.bincount(y_train, minlength=num_classes).argmax()
    clamped = knn_predict(x_train, y_train, x_query, num_classes, k=10 * n, temperature=None)
    assert (clamped == majority).all()


def test_knn_accuracy(knn_data):
    x_train, y_train, x_query, num_classes = knn_data
    g = torch.Generator().manual_seed(1)
    y_test = torch.randint(0, num_classes, (40,), generator=g)
    preds = knn_predict(x_train, y_train, x_query, num_classes, k=5)
    acc = knn_accuracy(x_train, y_train, x_query, y_test, num_classes, k=5)
    assert acc == pytest.approx((preds == y_test).float().mean().item())
    # Training points are their own nearest neighbours.
    assert knn_accuracy(x_train, y_train, x_train, y_train, num_classes, k=1) == 1.0


def test_knn_rejects_bad_input(knn_data):
    x_train, y_train, x_query, num_classes = knn_data
    with pytest.raises(ValueError):
        knn_predict(x_train, y_train, x_query, num_classes, k=0)
    with pytest.raises(ValueError):
        knn_predict(x_train, y_train + num_classes, x_query, num_classes)
    with pytest.raises(ValueError):
        knn_predict(x_train, y_train, x_query[:, :3], num_classes)


# ---------------------------------------------------------------------- linear probe


def _blobs(n, dim, num_classes, spread, seed, proportions=None):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(1234))
    if proportions is None:
        y = torch.randint(0, num_classes, (n,), generator=g)
    else:
        y = torch.multinomial(torch.tensor(proportions), n, replacement=True, generator=g)
    return centers[y] * spread + torch.randn(n, dim, generator=g), y


def test_linear_probe_separable():
    x_tr, y_tr = _blobs(500, 20, 5, spread=10.0, seed=0)
    x_te, y_te = _blobs(200, 20, 5, spread=10.0, seed=1)
    res = linear_probe(x_tr, y_tr, x_te, y_te, num_classes=5)
    assert isinstance(res, LinearProbeResult)
    assert res.accuracy == 1.0 and res.train_accuracy == 1.0
    assert res.weight_decay in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def test_linear_probe_random_labels_is_chance():
    g = torch.Generator().manual_seed(0)
    x_tr, x_te = torch.randn(1000, 20, generator=g), torch.randn(1000, 20, generator=g)
    y_tr, y_te = torch.randint(0, 5, (1000,), generator=g), torch.randint(0, 5, (1000,), generator=g)
    res = linear_probe(x_tr, y_tr, x_te, y_te, num_classes=5)
    assert res.accuracy < 0.35
    assert res.train_accuracy > res.accuracy  # it does fit the noise it was given


def _objective64(x, y, w, b, wd):
    logits = x @ w.T + b
    return F.cross_entropy(logits, y) + wd * w.pow(2).sum()


def test_linear_probe_objective_matches_sklearn():
    # Overlapping classes, raw features off-centre and badly scaled, so the
    # standardisation and the regulariser both matter.
    wd, num_classes = 1e-2, 3
    x_tr, y_tr = _blobs(300, 10, num_classes, spread=0.7, seed=0)
    x_te, y_te = _blobs(300, 10, num_classes, spread=0.7, seed=1)
    scale = torch.logspace(-2, 2, 10)
    x_tr, x_te = x_tr * scale + 5.0, x_te * scale + 5.0

    # Independent standardisation (numpy, population std) for sklearn.
    mean, std = x_tr.numpy().astype(np.float64).mean(0), x_tr.numpy().astype(np.float64).std(0)
    z_tr, z_te = (x_tr.numpy() - mean) / std, (x_te.numpy() - mean) / std
    n = len(y_tr)
    # sklearn minimises C * sum_i CE_i + ||W||^2 / 2; dividing by C*n gives
    # mean CE + ||W||^2 / (2 C n), i.e. wd = 1 / (2 C n).
    sk = LogisticRegression(C=1.0 / (2 * wd * n), tol=1e-10, max_iter=10_000).fit(z_tr, y_tr.numpy())

    w, b = _fit(torch.tensor(z_tr, dtype=torch.float32), y_tr, num_classes, wd, max_iter=200)
    ours = torch.softmax(torch.tensor(z_te) @ w.double().T + b.double(), dim=1).numpy()
    assert np.abs(ours - sk.predict_proba(z_te)).max() < 1e-3

    # The mapping itself: sklearn's optimum is a stationary point of our objective
    # and both reach the same objective value.
    z64 = torch.tensor(z_tr)
    w_sk = torch.tensor(sk.coef_, requires_grad=True)
    b_sk = torch.tensor(sk.intercept_, requires_grad=True)
    obj_sk = _objective64(z64, y_tr, w_sk, b_sk, wd)
    obj_sk.backward()
    assert max(w_sk.grad.abs().max().item(), b_sk.grad.abs().max().item()) < 1e-6
    assert _objective64(z64, y_tr, w.double(), b.double(), wd).item() == pytest.approx(obj_sk.item(), abs=1e-6)
    # Sensitivity: the wrong mapping (dropping the factor 2) is detectably different.
    sk_wrong = LogisticRegression(C=1.0 / (wd * n), tol=1e-10, max_iter=10_000).fit(z_tr, y_tr.numpy())
    assert np.abs(ours - sk_wrong.predict_proba(z_te)).max() > 1e-2

    # End to end through the public function (its own standardisation, single wd).
    res = linear_probe(x_tr, y_tr, x_te, y_te, num_classes, weight_decays=(wd,))
    assert res.weight_decay == wd
    assert res.accuracy == pytest.approx(sk.score(z_te, y_te.numpy()), abs=1e-12)
    assert res.train_accuracy == pytest.approx(sk.score(z_tr, y_tr.numpy()), abs=1e-12)


def test_linear_probe_selects_weight_decay_on_validation():
    # Imbalanced, separable classes: a huge wd collapses W to ~0 so only the
    # (unpenalised) bias speaks and the majority class is always predicted.
    props = [0.5, 0.25, 0.25]
    x_tr, y_tr = _blobs(400, 10, 3, spread=5.0, seed=0, proportions=props)
    x_te, y_te = _blobs(200, 10, 3, spread=5.0, seed=1, proportions=props)
    huge = linear_probe(x_tr, y_tr, x_te, y_te, 3, weight_decays=(1e3,))
    assert huge.accuracy == pytest.approx((y_te == 0).float().mean().item())
    res = linear_probe(x_tr, y_tr, x_te, y_te, 3, weight_decays=(1e3, 1e-4))
    assert res.weight_decay == 1e-4 and res.accuracy == 1.0
    # Both give perfect validation accuracy: the tie goes to the larger wd.
    res = linear_probe(x_tr, y_tr, x_te, y_te, 3, weight_decays=(1e-4, 1e-3))
    assert res.weight_decay == 1e-3


def test_linear_probe_deterministic():
    x_tr, y_tr = _blobs(300, 10, 4, spread=0.5, seed=0)
    x_te, y_te = _blobs(300, 10, 4, spread=0.5, seed=1)
    a = linear_probe(x_tr, y_tr, x_te, y_te, 4, seed=3)
    b = linear_probe(x_tr, y_tr, x_te, y_te, 4, seed=3)
    assert a == b


def test_linear_probe_rejects_bad_input():
    x, y = _blobs(50, 4, 2, spread=3.0, seed=0)
    with pytest.raises(ValueError):
        linear_probe(x, y, x, y + 2, num_classes=2)
    with pytest.raises(ValueError):
        linear_probe(x, y, x[:, :3], y, num_classes=2)
    with pytest.raises(ValueError):
        linear_probe(x, y, x, y, num_classes=2, val_fraction=0.0)
