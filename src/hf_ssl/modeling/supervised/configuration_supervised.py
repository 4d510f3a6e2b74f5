"""Configuration of the supervised baseline: the labelled subset only.

Every semi-supervised table (Oliver et al., "Realistic Evaluation of Deep Semi-Supervised Learning Algorithms",
NeurIPS 2018; USB, Wang et al. NeurIPS 2022) sets its methods beside a model trained on the same labels with the same
backbone, augmentation and budget and no unlabelled data: what the unlabelled images add is the difference.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..semi_supervised import SemiSupervisedConfig


@strict
class SupervisedConfig(SemiSupervisedConfig):
    r"""
    The fields of `SemiSupervisedConfig`; `unlabeled_ratio` is 0: no unlabelled image is loaded (a batch is the
    labelled images alone, weakly augmented as every semi-supervised method's labelled images are).
    """

    model_type = "hf_ssl_supervised"

    unlabeled_ratio: int = 0

    def validate_labelled_only(self):
        if self.unlabeled_ratio != 0:
            raise ValueError("supervised trains on the labelled images only: unlabeled_ratio must be 0 "
                             f"(got {self.unlabeled_ratio})")


__all__ = ["SupervisedConfig"]
