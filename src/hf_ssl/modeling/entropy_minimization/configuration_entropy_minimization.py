"""Configuration of entropy minimisation.

Grandvalet & Bengio, "Semi-supervised Learning by Entropy Minimization", NeurIPS 2004: maximise the labelled
log-likelihood minus lambda times the entropy of the model's predictions on the unlabelled data (their Eq. 7),
favouring decision boundaries in low-density regions. The paper chooses lambda by cross-validation and gives no
universal value; 0.1 is the default here, a weight small enough that the labelled cross-entropy leads early on (a
large weight makes an untrained model confident in arbitrary classes). An optional sigmoid ramp-up of lambda is not
in the paper (it is how later work, e.g. Oliver et al. 2018, schedules its unlabelled terms); off by default.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..semi_supervised import SemiSupervisedConfig


@strict
class EntropyMinimizationConfig(SemiSupervisedConfig):
    r"""
    The fields of `SemiSupervisedConfig` (mu = `unlabeled_ratio` = 7), and:
    entropy_weight (`float`, defaults to 0.1): lambda, the weight of the mean prediction entropy on unlabelled
        images (the paper's Eq. 7 tunes it by cross-validation).
    ramp_up_length (`float`, defaults to 0.0): the share of training over which lambda rises along the sigmoid
        ramp-up exp(-5 (1 - t)^2) (Laine & Aila 2017); 0: constant lambda, as in the paper.
    """

    model_type = "hf_ssl_entropy_minimization"

    entropy_weight: float = 0.1
    ramp_up_length: float = 0.0

    def validate_entropy_minimization(self):
        if self.entropy_weight < 0:
            raise ValueError(f"entropy_weight must be >= 0, got {self.entropy_weight}")
        if not 0.0 <= self.ramp_up_length <= 1.0:
            raise ValueError(f"ramp_up_length must be in [0, 1] (a fraction of training), got {self.ramp_up_length}")


__all__ = ["EntropyMinimizationConfig"]
