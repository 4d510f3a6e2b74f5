"""Few-shot linear evaluation of frozen features: k labelled examples per class.

The low-shot protocol of the SSL literature (e.g. SimCLR's semi-supervised table, MSN and DINOv2's k-shot
evaluation: Assran et al. 2022, "Masked Siamese Networks for Label-Efficient Learning", Sec. 5.1): a
logistic-regression head is trained on ``shots`` labelled examples per class drawn from the train split's
frozen features, and scored on the whole test split. Which examples are drawn matters a lot at small k, so the
protocol is repeated over several seeded episodes and reported as mean and standard deviation.

The head is :func:`hf_ssl.evaluation.linear_probe.linear_probe` with one fixed L2 strength: there is no
validation split to choose it from (holding out some of k labels per class would make it few-shot on fewer
shots). Features are standardised with the mean and standard deviation of the whole train split: what is scarce
in the few-shot setting is labels, not images, and statistics of k examples per class are too noisy (they scale
a dimension that merely varies little among the drawn examples up to the weight of an informative one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import HfSslError
from .linear_probe import linear_probe

__all__ = ["FewShotResult", "few_shot", "sample_few_shot_indices", "check_shots", "DEFAULT_SHOTS", "DEFAULT_EPISODES"]

DEFAULT_SHOTS = 10
DEFAULT_EPISODES = 5
# L2 strength of the head's objective `mean cross-entropy + wd * ||W||^2` (scikit-learn's C = 1 / (2 wd n)):
# with 10 shots x 10 classes this is C = 0.5, a little stronger than scikit-learn's default C = 1.
DEFAULT_FEW_SHOT_WEIGHT_DECAY = 1e-2


@dataclass
class FewShotResult:
    """Outcome of :func:`few_shot`."""

    accuracy: float  # mean test accuracy over the episodes, in [0, 1]
    std: float  # sample standard deviation over the episodes (0 for a single episode)
    episode_accuracies: list[float]
    shots: int
    episodes: int
    weight_decay: float


def check_shots(labels: torch.Tensor, shots: int, num_classes: int) -> torch.Tensor:
    """The number of examples of each class; raises :class:`HfSslError` when one has fewer than ``shots``."""
    if shots < 1:
        raise HfSslError(f"shots must be >= 1, got {shots}")
    counts = torch.bincount(torch.as_tensor(labels).long().cpu(), minlength=num_classes)
    short = (counts < shots).nonzero().flatten()
    if short.numel():
        cls = int(short[0])
        raise HfSslError(f"few-shot with {shots} shots needs {shots} train examples of every class; class {cls} has "
                         f"{int(counts[cls])} (use --shots {int(counts.min())} or fewer)")
    return counts


def sample_few_shot_indices(labels: torch.Tensor, shots: int, num_classes: int,
                            generator: torch.Generator) -> torch.Tensor:
    """Indices of exactly ``shots`` examples of every class in ``[0, num_classes)``, drawn uniformly without
    replacement within each class; sorted by class. Vectorised: one random permutation, a stable sort by label,
    then each example's rank within its class decides whether it is taken.

    Raises :class:`HfSslError` when a class has fewer than ``shots`` examples.
    """
    labels = torch.as_tensor(labels).long().cpu()
    counts = check_shots(labels, shots, num_classes)
    permutation = torch.randperm(labels.numel(), generator=generator)
    by_class = permutation[torch.argsort(labels[permutation], stable=True)]  # grouped by class, random within
    class_start = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.arange(labels.numel()) - class_start[labels[by_class]]
    return by_class[rank_in_class < shots]


def few_shot(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    shots: int = DEFAULT_SHOTS,
    episodes: int = DEFAULT_EPISODES,
    weight_decay: float = DEFAULT_FEW_SHOT_WEIGHT_DECAY,
    seed: int = 0,
    max_iter: int = 200,
) -> FewShotResult:
    """Mean and standard deviation over ``episodes`` of the test accuracy of a logistic-regression head trained on
    ``shots`` examples per class (episode ``e`` draws its subset with seed ``seed + e``). See the module docstring.
    """
    if episodes < 1:
        raise HfSslError(f"episodes must be >= 1, got {episodes}")
    train_labels = torch.as_tensor(train_labels).long().cpu()
    check_shots(train_labels, shots, num_classes)
    train_features = torch.as_tensor(train_features).detach().float().cpu()
    pool_statistics = (train_features.mean(dim=0), train_features.std(dim=0, unbiased=False))
    accuracies = []
    for episode in range(episodes):
        subset = sample_few_shot_indices(train_labels, shots, num_classes,
                                         torch.Generator().manual_seed(seed + episode))
        probe = linear_probe(train_features[subset], train_labels[subset], test_features, test_labels, num_classes,
                             weight_decays=(weight_decay,), max_iter=max_iter, feature_statistics=pool_statistics)
        accuracies.append(probe.accuracy)
    mean = sum(accuracies) / episodes
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (episodes - 1)) if episodes > 1 else 0.0
    return FewShotResult(accuracy=mean, std=std, episode_accuracies=accuracies, shots=shots, episodes=episodes,
                         weight_decay=weight_decay)
