"""k-nearest-neighbour evaluation of frozen features.

This is the kNN monitor of the self-supervised learning literature: the weighted
kNN classifier of Wu et al. 2018, "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination" (Sec. 3.4), as used by InstDisc, DINO
and solo-learn. Features are L2-normalised, neighbours are ranked by cosine
similarity, and each of the top-k neighbours votes for its label with weight
``exp(sim / temperature)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["knn_predict", "knn_accuracy"]


def _check_labels(labels: torch.Tensor, n: int, num_classes: int, name: str) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    labels = labels.long()
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes})")
    return labels


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float | None = 0.07,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Predict labels of ``query_features`` by a cosine-similarity kNN vote (Wu et al. 2018).

    Args:
        train_features: ``(N, D)`` bank of (frozen) training features.
        train_labels: ``(N,)`` integer labels in ``[0, num_classes)``.
        query_features: ``(Q, D)`` features to classify.
        num_classes: number of classes.
        k: number of neighbours; clamped to ``N``.
        temperature: with a value ``T``, each neighbour votes with weight
            ``exp(sim / T)`` (Wu et al. 2018; DINO uses ``T = 0.07``). With ``None``,
            plain majority vote (weight 1).
        chunk_size: queries processed per matrix multiply; peak extra memory is
            about ``chunk_size * N`` floats.

    Returns:
        ``(Q,)`` int64 predicted labels.

    Tie rules (deterministic): with ``temperature=None``, a tie in vote counts goes
    to the tied class with the larger summed similarity of its voters; any tie that
    remains (and any exact tie of weighted votes) goes to the smallest class index.
    Which of several exactly equidistant neighbours at rank k enters the top-k is
    left to ``torch.topk``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if temperature is not None and temperature <= 0:
        raise ValueError(f"temperature must be positive or None, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    train_features = torch.as_tensor(train_features)
    query_features = torch.as_tensor(query_features)
    if train_features.ndim != 2 or query_features.ndim != 2:
        raise ValueError("train_features and query_features must be 2-D (samples, dim)")
    if train_features.shape[1] != query_features.shape[1]:
        raise ValueError(
            f"feature dims differ: train {train_features.shape[1]} vs query {query_features.shape[1]}"
        )
    n_train = train_features.shape[0]
    if n_train == 0:
        raise ValueError("train_features is empty")
    train_labels = _check_labels(train_labels, n_train, num_classes, "train_labels").to(train_features.device)
    k = min(k, n_train)

    # float32 regardless of input dtype: half-precision similarities make ranks unstable.
    bank = F.normalize(train_features.float(), dim=1)
    preds = torch.empty(query_features.shape[0], dtype=torch.long, device=train_features.device)
    for start in range(0, query_features.shape[0], chunk_size):
        q = F.normalize(query_features[start : start + chunk_size].float().to(bank.device), dim=1)
        sims, idx = (q @ bank.T).topk(k, dim=1)  # sorted, so sims[:, 0] is the row max
        nbr_labels = train_labels[idx]
        votes = torch.zeros(q.shape[0], num_classes, dtype=torch.float32, device=bank.device)
        if temperature is not None:
            # Shifting by the row max leaves vote ratios (hence the argmax) unchanged
            # but keeps exp() finite for very small temperatures.
            weights = ((sims - sims[:, :1]) / temperature).exp()
            votes.scatter_add_(1, nbr_labels, weights)
            preds[start : start + q.shape[0]] = votes.argmax(dim=1)
        else:
            votes.scatter_add_(1, nbr_labels, torch.ones_like(sims))
            sim_sums = torch.zeros_like(votes).scatter_add_(1, nbr_labels, sims)
            # Counts are exact small integers in float32, so == is a safe tie test.
            tied = votes == votes.max(dim=1, keepdim=True).values
            preds[start : start + q.shape[0]] = sim_sums.masked_fill(~tied, float("-inf")).argmax(dim=1)
    return preds


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float | None = 0.07,
    chunk_size: int = 1024,
) -> float:
    """Top-1 accuracy in ``[0, 1]`` of the kNN classifier of :func:`knn_predict` on a test set."""
    test_features = torch.as_tensor(test_features)
    test_labels = _check_labels(test_labels, test_features.shape[0], num_classes, "test_labels")
    if test_labels.numel() == 0:
        raise ValueError("test set is empty")
    preds = knn_predict(
        train_features, train_labels, test_features, num_classes,
        k=k, temperature=temperature, chunk_size=chunk_size,
    )
    return (preds.cpu() == test_labels.cpu()).double().mean().item()
