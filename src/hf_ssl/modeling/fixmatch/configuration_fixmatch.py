"""Configuration of FixMatch.

Sohn, Berthelot, Li, Zhang, Carlini, Cubuk, Kurakin, Zhang, Raffel, "FixMatch: Simplifying Semi-Supervised Learning
with Consistency and Confidence", NeurIPS 2020. For each unlabelled image the model's prediction on a weakly augmented
view (flip and translation) becomes a hard pseudo-label when its confidence is at least tau; the model is then trained
to predict it on a strongly augmented view of the same image (RandAugment with random magnitudes, then Cutout):
loss = l_s + lambda_u l_u (Eqs. 2-4). The weights used for evaluation are an exponential moving average of the
trained ones (Sec. 4 and App. B.1: "we report the final performance of an exponential moving average of model
parameters").

Defaults: the paper's CIFAR-10 hyperparameters (Sec. 4, App. B.1, Table 4): tau = 0.95, lambda_u = 1, mu = 7 (the
base config's `unlabeled_ratio`), EMA decay 0.999; the strong augmentation as `nn.rand_augment` implements it (2 ops
per image at random magnitudes, Cutout of up to half the side).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..semi_supervised import SemiSupervisedConfig


@strict
class FixMatchConfig(SemiSupervisedConfig):
    r"""
    The fields of `SemiSupervisedConfig` (mu = `unlabeled_ratio` = 7: B labelled and 7 B unlabelled images a step,
    FixMatch's CIFAR-10 setting), and:
    threshold (`float`, defaults to 0.95): tau, the confidence above which a weak view's argmax becomes the strong
        view's target (Eq. 4; Table 4).
    unlabeled_weight (`float`, defaults to 1.0): lambda_u, the weight of the unlabelled loss (Eq. 4; no ramp-up:
        the threshold does that job, Sec. 2.2).
    ema_decay (`float`, defaults to 0.999): decay of the EMA of the weights that is evaluated and published (App. B.1),
        capped by 1 - 1 / (step + 1) early in training (a warm start, not in the paper; `FixMatchModel.ema_decay`).
    strong_num_ops (`int`, defaults to 2): RandAugment operations per strong view, each at a random magnitude
        (Sec. 2.3: "RandAugment ... with a random magnitude").
    strong_cutout (`float`, defaults to 0.5): Cutout's largest side, as a share of the image side (App. D, Table 12);
        0 turns Cutout off.
    """

    model_type = "hf_ssl_fixmatch"

    threshold: float = 0.95
    unlabeled_weight: float = 1.0
    ema_decay: float = 0.999
    strong_num_ops: int = 2
    strong_cutout: float = 0.5

    def validate_fixmatch(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.unlabeled_weight < 0:
            raise ValueError(f"unlabeled_weight must be >= 0, got {self.unlabeled_weight}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.strong_num_ops < 0:
            raise ValueError(f"strong_num_ops must be >= 0, got {self.strong_num_ops}")
        if not 0.0 <= self.strong_cutout <= 1.0:
            raise ValueError(f"strong_cutout must be in [0, 1], got {self.strong_cutout}")


__all__ = ["FixMatchConfig"]
