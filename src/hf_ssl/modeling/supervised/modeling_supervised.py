"""The supervised baseline: cross-entropy on the labelled subset, nothing else.

    loss = 1/B sum_b CE(f(weak(x_b)), y_b)

The same classifier, weak augmentation (flip and translation) and step budget as the semi-supervised methods, so a
table row of theirs minus this one is what the unlabelled images bring.
"""

from __future__ import annotations

import torch

from ..semi_supervised import SemiSupervisedModel, SemiSupervisedOutput
from .configuration_supervised import SupervisedConfig


class SupervisedModel(SemiSupervisedModel):
    config_class = SupervisedConfig
    base_model_prefix = "supervised"

    def forward(self, labeled_pixels: torch.Tensor, labels: torch.Tensor, unlabeled_pixels: torch.Tensor | None = None,
                unlabeled_index: torch.Tensor | None = None, **kwargs) -> SemiSupervisedOutput:
        # The baseline ignores unlabelled images (its presets load none: mu = 0).
        return self.labels_only(labeled_pixels, labels)


__all__ = ["SupervisedModel"]
