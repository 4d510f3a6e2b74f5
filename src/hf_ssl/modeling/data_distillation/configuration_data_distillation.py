"""Configuration of data distillation.

Radosavovic, Dollar, Girshick, Gkioxari, He, "Data Distillation: Towards Omni-Supervised Learning", CVPR 2018. A
teacher trained on the labelled data is run on several geometric transformations of each unlabelled image (the
paper: horizontal flips and scales); the aggregated prediction is the hard label of that image; a student of the same
architecture is retrained on the labelled and the automatically labelled data (Sec. 3).

Defaults and why:
- `transforms`: the paper's grid, {no flip, flip} x {scale 1, 0.8, 1.2} (`nn.test_time_ensemble.DEFAULT_TRANSFORMS`);
  without `horizontal_flip` (data where a mirror changes the class, e.g. digits) the flipped ones are left out.
- `selection="threshold"`: the paper keeps the predictions whose score is above a threshold. It sets the threshold
  so that an unlabelled image gets as many annotations on average as a labelled one has; with one class per image
  that keeps nearly every image, so the default is 0.5, the lowest threshold at which the kept class holds more of
  the ensemble's probability than all other classes together: only images on which the transforms disagree are
  dropped.
- `rounds=1` (one teacher, one student, as in the paper) and `reinitialize_student=True`: the student is retrained
  from the teacher's starting point (`--backbone`'s encoder, if any), not fine-tuned from the teacher.
"""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict

from ...nn.test_time_ensemble import DEFAULT_TRANSFORMS, apply_transform
from ..teacher_student import TeacherStudentConfig


@strict
class DataDistillationConfig(TeacherStudentConfig):
    r"""
    The fields of `TeacherStudentConfig` with data distillation's defaults (rounds 1, reinitialize_student true,
    selection "threshold" at 0.5), and:
    transforms (`list[str]`, *optional*): the teacher's test-time transforms (`nn.test_time_ensemble` names:
        identity, hflip, scale_<s>, crop_<f>_<position>, joined by "+"); the pseudo-label distribution is the mean
        of the teacher's softmax over them. None: the paper's flips x scales {1, 0.8, 1.2}, without the flips when
        `horizontal_flip` is off.
    """

    model_type = "hf_ssl_data_distillation"

    rounds: int = 1
    reinitialize_student: bool = True
    threshold: float = 0.5
    transforms: list[str] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.transforms is None:
            self.transforms = [t for t in DEFAULT_TRANSFORMS if self.horizontal_flip or "hflip" not in t]

    def validate_transforms(self):
        if not self.transforms:
            raise ValueError("transforms must name at least one test-time transform")
        for name in self.transforms:
            apply_transform(name, torch.zeros(1, 1, 4, 4))  # raises ValueError naming a bad transform


__all__ = ["DataDistillationConfig"]
