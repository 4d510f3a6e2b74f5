"""Self-training around a native transformers image classifier, in rounds inside one run.

Round 0 trains on the labels alone; in round r >= 1 the frozen teacher (the classifier at the round's start) labels
each batch's weakly augmented unlabelled images under no_grad, and

    p_u    = softmax(teacher(x_u)),  y_u = argmax p_u,  w_u = selection(p_u)   (threshold | all | weighted | top_k)
    l_u    = 1/N_u sum_u w_u CE(student(x_u), y_u)                             (losses.pseudo_label)
    loss   = CE(labelled) + unlabeled_weight * l_u

Everything is `TeacherStudentModel`'s: self-training is its plain form (softmax teacher, hard labels, no noise).
"""

from __future__ import annotations

from ..teacher_student import TeacherStudentModel
from .configuration_self_training import SelfTrainingConfig


class SelfTrainingModel(TeacherStudentModel):
    config_class = SelfTrainingConfig
    base_model_prefix = "self_training"


__all__ = ["SelfTrainingModel"]
