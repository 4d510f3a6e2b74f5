"""Configuration of Noisy Student.

Xie, Luong, Hovy, Le, "Self-training with Noisy Student improves ImageNet classification", CVPR 2020. A teacher
labels clean (un-augmented) unlabelled images, with soft or hard pseudo-labels; an equal-or-larger student trains on
labelled and pseudo-labelled images under noise: RandAugment on its inputs, dropout before the classifier (0.5) and
stochastic depth (survival 0.8 at the last layer, linear decay: drop_path_rate 0.2); the student becomes the
teacher; iterated (3 iterations for their best model). The paper filters images with teacher confidence below 0.3
and balances classes (top K per class, duplicating images of rare classes).

Defaults: the paper's soft labels at T = 1, dropout 0.5, drop_path_rate 0.2, 2 RandAugment ops, threshold 0.3,
3 rounds, and a student re-initialised each round (the paper trains each student from scratch). Class balancing is
`--selection top_k --top_k K` instead of the threshold (one rule at a time; rare classes are not duplicated).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..teacher_student import TeacherStudentConfig


@strict
class NoisyStudentConfig(TeacherStudentConfig):
    r"""
    The fields of `TeacherStudentConfig` with Noisy Student's defaults (rounds 3, reinitialize_student true,
    selection "threshold" at 0.3), `classifier_dropout` 0.5 (the paper's dropout before the final layer), and:
    soft_labels (`bool`, defaults to `True`): train on the teacher's softmax (the paper's default, slightly better
        on out-of-domain unlabelled data); False: on its argmax (hard labels). The selection's weights apply either
        way.
    temperature (`float`, defaults to 1.0): the teacher's softmax temperature for its soft labels and confidences
        (the paper: 1, the plain softmax).
    rand_augment_ops (`int`, defaults to 2): RandAugment operations per student image (the paper's N = 2), drawn
        as FixMatch's variant with a random magnitude and Cutout (`nn.rand_augment`); 0 turns the input noise off.
    drop_path_rate (`float`, defaults to 0.2): stochastic depth of the student, written into the backbone config
        where it has the field (ConvNeXt, Swin, BEiT, DINOv2: the linear decay rule up to this rate at the last
        layer); transformers' ResNet and ViT have no stochastic depth, so for them it does nothing.
    """

    model_type = "hf_ssl_noisy_student"

    rounds: int = 3
    reinitialize_student: bool = True
    threshold: float = 0.3
    classifier_dropout: float = 0.5
    soft_labels: bool = True
    temperature: float = 1.0
    rand_augment_ops: int = 2
    drop_path_rate: float = 0.2

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # the student's stochastic depth lives in its backbone config; saved with it (and in the exported config,
        # as published ConvNeXt and Swin checkpoints record theirs); identity at inference
        if "drop_path_rate" in self.backbone_config.to_dict():
            self.backbone_config.drop_path_rate = self.drop_path_rate

    def validate_noise(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.rand_augment_ops < 0:
            raise ValueError(f"rand_augment_ops must be >= 0, got {self.rand_augment_ops}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate}")


__all__ = ["NoisyStudentConfig"]
