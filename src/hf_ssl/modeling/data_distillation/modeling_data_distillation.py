"""Data distillation (Radosavovic et al., CVPR 2018) around a native transformers image classifier, in rounds.

Round 0 trains the teacher on the labels; in round r >= 1 the frozen teacher labels each batch's weakly augmented
unlabelled images with its ensemble over test-time transforms T (flips and scales, `nn.test_time_ensemble`):

    p_u    = 1/|T| sum_t softmax(teacher(t(x_u)))       the aggregated prediction (no inverse map: a class label is
                                                        invariant to flips and scales)
    y_u    = argmax p_u,   w_u = 1(max p_u >= tau)      the hard label, kept above the score threshold
    loss   = CE(labelled) + unlabeled_weight * 1/N_u sum_u w_u CE(student(x_u), y_u)

The student is re-initialised at the round's start (`reinitialize_student`, the paper retrains a student).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ...nn.test_time_ensemble import ensemble_probabilities
from ..teacher_student import TeacherStudentModel
from .configuration_data_distillation import DataDistillationConfig


class DataDistillationModel(TeacherStudentModel):
    config_class = DataDistillationConfig
    base_model_prefix = "data_distillation"

    def teacher_probabilities(self, teacher: PreTrainedModel, pixels: torch.Tensor) -> torch.Tensor:
        """The mean of the teacher's softmax over the configured transforms (the multi-transform inference)."""
        return ensemble_probabilities(lambda x: teacher(pixel_values=x).logits, pixels, self.config.transforms)


__all__ = ["DataDistillationModel"]
