"""Tests of the few-shot and fine-tune protocols and of the `evaluate` metric modules shipped in the package."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from hf_ssl.data.datasets import ImageDataset
from hf_ssl.errors import HfSslError
from hf_ssl.evaluation.few_shot import few_shot, sample_few_shot_indices

from conftest import run_cli, tiny_backbone_config

# ----------------------------------------------------------------------------- few-shot sampling


def test_few_shot_sampling_takes_exactly_k_per_class_uniformly():
    # class sizes 5, 12, 40 (class 3 absent from the labels but below num_classes would be an error, tested below)
    labels = torch.tensor([0] * 5 + [1] * 12 + [2] * 40)[torch.randperm(57, generator=torch.Generator().manual_seed(1))]
    shots, draws = 3, 3000
    counts = torch.zeros(57)
    for draw in range(draws):
        chosen = sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(draw))
        assert chosen.unique().numel() == chosen.numel() == 3 * shots
        assert torch.bincount(labels[chosen], minlength=3).tolist() == [shots] * 3
        counts[chosen] += 1
    # each example of class c is drawn with probability shots / n_c; binomial standard error, 5 sigma
    class_size = torch.bincount(labels).float()[labels]
    p = shots / class_size
    z = (counts / draws - p) / torch.sqrt(p * (1 - p) / draws).clamp_min(1e-12)
    assert z.abs().max() < 5, z.abs().max()
    assert counts[class_size == 5].min() > 0.5 * draws  # 3 of 5: every one in 60% of the draws
    # different seeds give different subsets, the same seed the same one
    first = sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(0))
    assert torch.equal(first, sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(1)))


def test_few_shot_too_many_shots_is_one_clear_error():
    labels = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(HfSslError, match="class 1 has 2"):
        sample_few_shot_indices(labels, 3, 2, torch.Generator().manual_seed(0))
    with pytest.raises(HfSslError, match="class 2 has 0"):
        sample_few_shot_indices(labels, 1, 3, torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------- few-shot accuracy


def _gaussian_classes(num_classes=4, dim=8, n_train=200, n_test=300, spread=1.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2 * torch.randn(num_classes, dim, generator=g)
    y_train = torch.arange(n_train) % num_classes
    y_test = torch.randint(0, num_classes, (n_test,), generator=g)
    x_train = centers[y_train] + spread * torch.randn(n_train, dim, generator=g)
    x_test = centers[y_test] + spread * torch.randn(n_test, dim, generator=g)
    return x_train, y_train, x_test, y_test


def test_few_shot_matches_sklearn_on_the_same_subsets():
    x_train, y_train, x_test, y_test = _gaussian_classes()
    shots, episodes, wd = 5, 3, 1e-2
    result = few_shot(x_train, y_train, x_test, y_test, 4, shots=shots, episodes=episodes, weight_decay=wd, seed=7)
    assert result.episodes == episodes and len(result.episode_accuracies) == episodes
    reference = []
    for episode in range(episodes):
        subset = sample_few_shot_indices(y_train, shots, 4, torch.Generator().manual_seed(7 + episode)).numpy()
        x, y = x_train.double().numpy()[subset], y_train.numpy()[subset]
        mean, std = x.mean(0), x.std(0)
        n = len(y)
        # mean CE + wd ||W||^2  ==  sklearn's  0.5 ||W||^2 + C * sum CE  with C = 1 / (2 wd n)
        clf = LogisticRegression(C=1 / (2 * wd * n), tol=1e-10, max_iter=10000).fit((x - mean) / std, y)
        predictions = clf.predict((x_test.double().numpy() - mean) / std)
        reference.append(float((predictions == y_test.numpy()).mean()))
    for got, expected in zip(result.episode_accuracies, reference):
        assert abs(got - expected) <= 1 / len(y_test) + 1e-12, (result.episode_accuracies, reference)
    assert math.isclose(result.accuracy, float(np.mean(result.episode_accuracies)))
    assert math.isclose(result.std, float(np.std(result.episode_accuracies, ddof=1)))
    assert len(set(reference)) > 1  # the episodes really differ


def test_few_shot_separable_is_perfect_and_random_labels_are_at_chance():
    x_train, y_train, x_test, y_test = _gaussian_classes(spread=0.05)
    assert few_shot(x_train, y_train, x_test, y_test, 4, shots=2, episodes=2).accuracy == 1.0
    shuffled = y_train[torch.randperm(len(y_train), generator=torch.Generator().manual_seed(3))]
    x_noise = torch.randn(2000, 8, generator=torch.Generator().manual_seed(4))
    y_noise = torch.randint(0, 4, (2000,), generator=torch.Generator().manual_seed(5))
    chance = few_shot(x_train, shuffled, x_noise, y_noise, 4, shots=10, episodes=3).accuracy
    assert abs(chance - 0.25) < 0.05, chance
