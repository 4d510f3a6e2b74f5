"""Configuration of Pseudo-Label.

Lee, "Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method for Deep Neural Networks", ICML 2013
Workshop on Challenges in Representation Learning. The network is trained on the labelled data and, at the same
time, on the unlabelled data with the class of maximum predicted probability as its target (Eq. 1), weighted by
alpha(t), which is 0 until T1, rises linearly to alpha_f = 3 at T2 and stays there (Eq. 16).

Lee uses every unlabelled example (no threshold) and counts T1 = 100 and T2 = 600 in epochs of his MNIST runs; USB's
reimplementation (Wang et al., NeurIPS 2022) keeps only predictions with confidence >= 0.95 and ramps the weight over
the first 40% of training. The defaults here: USB's threshold (0.95; 0 gives Lee's original) and ramp (as fractions
of training, so they mean the same at any budget), Lee's alpha_f = 3.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..semi_supervised import SemiSupervisedConfig


@strict
class PseudoLabelConfig(SemiSupervisedConfig):
    r"""
    The fields of `SemiSupervisedConfig` (mu = `unlabeled_ratio` = 7, USB's), and:
    threshold (`float`, defaults to 0.95): an unlabelled image is used when its largest predicted probability is at
        least this (USB); 0 uses every image (Lee's original).
    unlabeled_weight (`float`, defaults to 3.0): alpha_f, the final weight of the unlabelled loss (Lee, Eq. 16).
    ramp_up_start (`float`, defaults to 0.0): T1, as a fraction of training: the unlabelled weight is 0 before.
    ramp_up_end (`float`, defaults to 0.4): T2, as a fraction of training: the weight reaches alpha_f here (USB's
        `unsup_warmup` of 0.4).
    """

    model_type = "hf_ssl_pseudo_label"

    threshold: float = 0.95
    unlabeled_weight: float = 3.0
    ramp_up_start: float = 0.0
    ramp_up_end: float = 0.4

    def validate_pseudo_label(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.unlabeled_weight < 0:
            raise ValueError(f"unlabeled_weight must be >= 0, got {self.unlabeled_weight}")
        if not 0.0 <= self.ramp_up_start <= self.ramp_up_end <= 1.0:
            raise ValueError("need 0 <= ramp_up_start <= ramp_up_end <= 1 (fractions of training), got "
                             f"{self.ramp_up_start} and {self.ramp_up_end}")


__all__ = ["PseudoLabelConfig"]
