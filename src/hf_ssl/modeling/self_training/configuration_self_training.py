"""Configuration of self-training with a teacher trained on the labels (Scudder 1965; Yarowsky 1995; for deep
networks Lee 2013 and Yalniz et al., "Billion-scale semi-supervised learning for image classification", 2019).

A teacher trained on the labelled images labels the unlabelled ones; a student trains on both; the student becomes
the next teacher, for `rounds` rounds (`hf_ssl.modeling.teacher_student`). Which pseudo-labels the student uses is
the `selection` rule of the course notes: only a few most confident ones (`top_k` per class, Yalniz et al.'s
class-balanced choice; or a confidence `threshold`), `all` of them, or all `weighted` by the teacher's confidence.

Defaults: 2 rounds (the teacher, then two students: the first re-labelling gives most of the gain, a second shows
the iteration; no paper fixes it for this setting), the confidence threshold 0.95 (USB's, which needs no
dataset-size-dependent k), hard labels, weight 1, the student continuing from the teacher's weights (classic
self-training retrains the same model; `--reinitialize_student true` starts each student afresh).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..teacher_student import TeacherStudentConfig


@strict
class SelfTrainingConfig(TeacherStudentConfig):
    r"""
    The fields of `TeacherStudentConfig` (rounds, teacher, reinitialize_student, unlabeled_weight, selection,
    threshold, top_k) with self-training's defaults: rounds 2, selection "threshold" at 0.95, no re-initialisation.
    """

    model_type = "hf_ssl_self_training"

    rounds: int = 2


__all__ = ["SelfTrainingConfig"]
