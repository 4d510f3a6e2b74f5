"""Linear probe (linear evaluation protocol) on frozen features.

The linear evaluation protocol of SimCLR (Chen et al. 2020) and MoCo (He et al.
2020): train a linear classifier on top of frozen representations and report
its test accuracy. It is solved here as the convex problem it is, following
SimCLR's transfer-learning linear evaluation (after Kornblith et al. 2019): an
L2-regularised multinomial logistic regression fitted full-batch with L-BFGS,
the regularisation strength picked on a held-out validation split. This makes
the number a property of the features rather than of an SGD schedule. Features
are standardised with the training mean/std, playing the role of the affine-free
BatchNorm that MAE (He et al. 2022) puts before its linear-probe head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LinearProbeResult", "linear_probe"]


@dataclass
class LinearProbeResult:
    """Outcome of :func:`linear_probe`."""

    accuracy: float  # test accuracy in [0, 1]
    train_accuracy: float  # accuracy of the final model on the full train set
    weight_decay: float  # the L2 strength chosen on the validation split


def _fit(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    max_iter: int,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean cross-entropy + weight_decay * ||W||^2 (bias unpenalised) by L-BFGS."""
    if init is None:
        w = torch.zeros(num_classes, x.shape[1], dtype=x.dtype)
        b = torch.zeros(num_classes, dtype=x.dtype)
    else:
        w, b = init[0].clone(), init[1].clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    # One .step() runs the whole optimisation (up to max_iter iterations);
    # the strong-Wolfe line search makes L-BFGS robust without a learning rate.
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=max_iter, history_size=20,
        tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(torch.addmm(b, x, w.T), y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


@torch.no_grad()
def _accuracy(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> float:
    return (torch.addmm(b, x, w.T).argmax(dim=1) == y).double().mean().item()


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    weight_decays: Sequence[float] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2),
    max_iter: int = 200,
    val_fraction: float = 0.1,
    seed: int = 0,
    feature_statistics: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LinearProbeResult:
    """Linear evaluation of frozen features (the SimCLR / MoCo linear protocol).

    Fits multinomial logistic regression ``softmax(W x + b)`` on standardised
    features by full-batch L-BFGS, minimising
    ``mean cross-entropy + wd * ||W||^2`` (bias not penalised). This equals
    scikit-learn's ``LogisticRegression(C=1 / (2 * wd * n))`` objective divided by
    ``C * n``.

    The L2 strength ``wd`` is chosen from ``weight_decays`` by accuracy on a
    random ``val_fraction`` of the train set (seeded by ``seed``; ties go to the
    larger ``wd``), then the model is refitted on the full train set with that
    ``wd`` and evaluated on the test set. With a single ``weight_decays`` entry
    the selection step is skipped. Features are standardised with the mean/std
    of the full train set (the split only selects ``wd``; it reuses those
    label-free statistics). Everything runs in float32 on CPU and is
    deterministic given ``seed``.

    Args:
        train_features: ``(N, D)`` frozen training features.
        train_labels: ``(N,)`` labels in ``[0, num_classes)``.
        test_features: ``(M, D)`` frozen test features.
        test_labels: ``(M,)`` labels.
        num_classes: number of classes.
        weight_decays: candidate L2 strengths.
        max_iter: maximum L-BFGS iterations per fit.
        val_fraction: fraction of the train set held out to select ``wd``.
        seed: seed of the train/val split.
        feature_statistics: the (mean, std) to standardise with, when they should come from a larger unlabelled
            pool than the labelled train set (few-shot); default: the train set's.
    """
    weight_decays = [float(wd) for wd in weight_decays]
    if not weight_decays or any(wd < 0 for wd in weight_decays):
        raise ValueError("weight_decays must be a non-empty sequence of non-negative floats")
    x_tr = torch.as_tensor(train_features).detach().float().cpu()
    x_te = torch.as_tensor(test_features).detach().float().cpu()
    y_tr = torch.as_tensor(train_labels).detach().long().cpu()
    y_te = torch.as_tensor(test_labels).detach().long().cpu()
    if x_tr.ndim != 2 or x_te.ndim != 2 or x_tr.shape[1] != x_te.shape[1]:
        raise ValueError("features must be 2-D with matching feature dims")
    if y_tr.shape != (x_tr.shape[0],) or y_te.shape != (x_te.shape[0],):
        raise ValueError("labels must be 1-D and match the number of feature rows")
    if x_tr.shape[0] == 0 or x_te.shape[0] == 0:
        raise ValueError("train and test sets must be non-empty")
    for y in (y_tr, y_te):
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes})")

    if feature_statistics is None:
        mean, std = x_tr.mean(dim=0), x_tr.std(dim=0, unbiased=False)
    else:
        mean, std = (torch.as_tensor(v).detach().float().cpu() for v in feature_statistics)
    # Constant features would otherwise blow up any test sample that differs.
    std = torch.where(std > 1e-6 * std.max().clamp_min(1e-12), std, torch.ones_like(std))
    x_tr = (x_tr - mean) / std
    x_te = (x_te - mean) / std

    init = None
    if len(weight_decays) == 1:
        best_wd = weight_decays[0]
    else:
        n = x_tr.shape[0]
        n_val = int(round(val_fraction * n))
        if not 0 < n_val < n:
            raise ValueError(f"val_fraction={val_fraction} leaves no validation or no training samples")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        val_idx, fit_idx = perm[:n_val], perm[n_val:]
        x_fit, y_fit, x_val, y_val = x_tr[fit_idx], y_tr[fit_idx], x_tr[val_idx], y_tr[val_idx]
        best_wd, best_acc, solutions = None, -1.0, {}
        # Strongest regularisation first: each solution warm-starts the next, weaker
        # one (a regularisation path), which cuts L-BFGS iterations substantially.
        prev = None
        for wd in sorted(set(weight_decays), reverse=True):
            prev = _fit(x_fit, y_fit, num_classes, wd, max_iter, init=prev)
            solutions[wd] = prev
            acc = _accuracy(x_val, y_val, *prev)
            if acc > best_acc:  # strict: ties keep the larger wd, visited first
                best_wd, best_acc = wd, acc
        init = solutions[best_wd]  # the 90% solution is a good start for the refit

    w, b = _fit(x_tr, y_tr, num_classes, best_wd, max_iter, init=init)
    return LinearProbeResult(
        accuracy=_accuracy(x_te, y_te, w, b),
        train_accuracy=_accuracy(x_tr, y_tr, w, b),
        weight_decay=best_wd,
    )
