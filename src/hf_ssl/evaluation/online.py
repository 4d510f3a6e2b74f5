"""Evaluation while training: the frozen-feature kNN protocol and RankMe on a held-out labelled subset, run by
Trainer at `--eval_steps` (or `--eval_strategy epoch`, `--eval_on_start`) and logged as `eval_knn_accuracy` and
`eval_rankme` beside the training loss, so that a flat loss can be told from a stalled encoder while the run goes on.

A modality that can score its encoder during training returns an `OnlineEvaluation` from
`Modality.online_evaluation`; `SSLTrainer.evaluate` calls it. It is Trainer's `eval_dataset` as well, which Trainer
requires whenever an evaluation strategy is set: the held-out examples and how to score a model on them, in one
object. Scoring reads the encoder that is exported (`MethodModel.exported_model()`), pooled as the method trains
(`feature_pooling`), under no_grad and in eval mode, and draws no random number: a run with online evaluation trains
exactly the weights of the same run without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .features import extract_features
from .knn import knn_accuracy
from .rankme import rankme


class OnlineEvaluation:
    """Held-out data and the protocol that scores a model on it during training."""

    description: str = ""  # for the card and the log: what is evaluated on what

    def evaluate(self, model) -> dict[str, float]:
        """Metrics of the model as it is now (names without the `eval_` prefix Trainer adds)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


@dataclass
class OnlineImageKnn(OnlineEvaluation):
    """The offline kNN protocol (`evaluation.knn`, the same k and temperature) with `bank_images` as its memory bank
    and `query_images` as its test set, on the features of the exported encoder; RankMe of the query features.

    On the full splits it gives the number `hf-ssl evaluate --protocol knn` gives on the exported folder; on a subset
    (large datasets: an evaluation every few hundred steps must take seconds, not minutes) the same protocol on
    fewer images, so a noisier estimate of it."""

    bank_images: torch.Tensor  # (N, C, H, W) uint8, at the model's size
    bank_labels: torch.Tensor
    query_images: torch.Tensor
    query_labels: torch.Tensor
    num_classes: int
    image_mean: Sequence[float]
    image_std: Sequence[float]
    k: int = 20
    temperature: float | None = 0.07
    batch_size: int = 256
    description: str = ""

    def __len__(self) -> int:
        return self.query_images.shape[0]

    def evaluate(self, model) -> dict[str, float]:
        encoder = model.exported_model()
        was_training = encoder.training
        try:  # extract_features puts the encoder in eval mode (BatchNorm's running statistics, no dropout)
            features = extract_features(encoder, torch.cat([self.bank_images, self.query_images]), self.image_mean,
                                        self.image_std, pooling=model.feature_pooling, batch_size=self.batch_size)
        finally:
            encoder.train(was_training)
        bank, queries = features.split([self.bank_images.shape[0], self.query_images.shape[0]])
        accuracy = knn_accuracy(bank, self.bank_labels, queries, self.query_labels, self.num_classes, k=self.k,
                                temperature=self.temperature)
        return {"knn_accuracy": accuracy, "rankme": rankme(queries)}


__all__ = ["OnlineEvaluation", "OnlineImageKnn"]
