"""Pseudo-Label (Lee 2013) around a native transformers image classifier.

Each step sees B labelled and mu * B unlabelled images (weakly augmented), in one classifier call:

    y'_u   = argmax_k f_k(x_u)                           the current model's class, a constant (no gradient; Eq. 1)
    w_u    = 1(max_k softmax(f(x_u))_k >= tau)           USB's confidence mask (tau = 0: Lee's original, all used)
    l_u    = 1/(mu B) sum_u w_u CE(f(x_u), y'_u)         normalised by every unlabelled image (losses.pseudo_label)
    loss   = CE(labelled) + alpha(t) l_u,   alpha(t) = alpha_f * linear ramp from T1 to T2 (Eq. 16)

t is the position in training (`self.progress`, 0..1). The pseudo-labels and their masks are recorded for the
monitor, which measures their accuracy and coverage against the hidden labels.
"""

from __future__ import annotations

import torch

from ...losses.pseudo_label import pseudo_label_loss
from ...nn.pseudo_labeling import select_threshold
from ...nn.ramp_up import linear_ramp_up
from ..semi_supervised import SemiSupervisedModel, SemiSupervisedOutput
from .configuration_pseudo_label import PseudoLabelConfig


class PseudoLabelModel(SemiSupervisedModel):
    config_class = PseudoLabelConfig
    base_model_prefix = "pseudo_label"

    def unlabeled_weight(self) -> float:
        """alpha(t) at the current position in training."""
        config = self.config
        return config.unlabeled_weight * linear_ramp_up(float(self.progress), config.ramp_up_start, config.ramp_up_end)

    def forward(self, labeled_pixels: torch.Tensor, labels: torch.Tensor, unlabeled_pixels: torch.Tensor | None = None,
                unlabeled_index: torch.Tensor | None = None, **kwargs) -> SemiSupervisedOutput:
        if unlabeled_pixels is None:  # every example labelled, or mu = 0: the labels alone
            return self.labels_only(labeled_pixels, labels)

        logits, unlabeled_logits = self.joint_logits(labeled_pixels, unlabeled_pixels)
        supervised = self.supervised_loss(logits, labels)
        with torch.no_grad():
            pseudo_labels, mask = select_threshold(unlabeled_logits.detach().float().softmax(dim=-1), self.config.threshold)
        unlabeled = pseudo_label_loss(unlabeled_logits, pseudo_labels, mask)
        alpha = self.unlabeled_weight()
        loss = supervised + alpha * unlabeled
        self.record_loss_terms(supervised, unlabeled, mask.mean(), unlabeled_weight=alpha)
        self.record_pseudo_labels(unlabeled_index, pseudo_labels, mask)
        return SemiSupervisedOutput(loss=loss, logits=logits)


__all__ = ["PseudoLabelModel"]
