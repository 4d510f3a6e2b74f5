"""Entropy minimisation (Grandvalet & Bengio, NeurIPS 2004) around a native transformers image classifier.

Each step sees B labelled and mu * B unlabelled images (weakly augmented), in one classifier call:

    H      = 1/(mu B) sum_u -sum_k p_uk log p_uk,   p_u = softmax(f(x_u))      (losses.entropy_minimization)
    loss   = CE(labelled) + lambda(t) H

Unlike pseudo-labelling the gradient flows through both factors of p log p: every unlabelled prediction is pushed
towards a corner of the simplex, whichever is nearest, i.e. the decision boundary away from the unlabelled points.
"""

from __future__ import annotations

import torch

from ...losses.entropy_minimization import entropy_loss
from ...nn.ramp_up import sigmoid_ramp_up
from ..semi_supervised import SemiSupervisedModel, SemiSupervisedOutput
from .configuration_entropy_minimization import EntropyMinimizationConfig


class EntropyMinimizationModel(SemiSupervisedModel):
    config_class = EntropyMinimizationConfig
    base_model_prefix = "entropy_minimization"

    def entropy_weight(self) -> float:
        """lambda(t) at the current position in training."""
        return self.config.entropy_weight * sigmoid_ramp_up(float(self.progress), self.config.ramp_up_length)

    def forward(self, labeled_pixels: torch.Tensor, labels: torch.Tensor, unlabeled_pixels: torch.Tensor | None = None,
                unlabeled_index: torch.Tensor | None = None, **kwargs) -> SemiSupervisedOutput:
        if unlabeled_pixels is None:  # every example labelled, or mu = 0: the labels alone
            return self.labels_only(labeled_pixels, labels)

        logits, unlabeled_logits = self.joint_logits(labeled_pixels, unlabeled_pixels)
        supervised = self.supervised_loss(logits, labels)
        entropy = entropy_loss(unlabeled_logits)
        weight = self.entropy_weight()
        loss = supervised + weight * entropy
        self.record_loss_terms(supervised, entropy, entropy_weight=weight)
        return SemiSupervisedOutput(loss=loss, logits=logits)


__all__ = ["EntropyMinimizationModel"]
