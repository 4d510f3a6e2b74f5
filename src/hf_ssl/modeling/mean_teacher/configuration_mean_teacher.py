"""Configuration of Mean Teacher.

Tarvainen & Valpola, "Mean teachers are better role models: Weight-averaged consistency targets improve
semi-supervised deep learning results", NeurIPS 2017. A student classifier is trained on the labels and on a
consistency cost: the squared distance between its softmax and the softmax of a *teacher* on another noisy view of
the same image (Sec. 2, Eq. 2). The teacher is not trained: its weights are an exponential moving average of the
student's, theta'_t = alpha theta'_{t-1} + (1 - alpha) theta_t (Eq. 1).

The defaults are the paper's CIFAR-10 setting (App. B.1; the reference TensorFlow `mean_teacher/model.py` defaults):
consistency weight 100 on the mean over classes of the squared difference (the reference divides the sum over classes
by the number of classes, `losses.consistency.softmax_mse_loss`), ramped up with the sigmoid exp(-5 (1 - t)^2) over
the first 40,000 of 150,000 steps (here the same fraction of training, 4/15), EMA decay 0.99 during the ramp-up and
0.999 after. The consistency is applied to the labelled examples too, as the reference does
(`apply_consistency_to_labeled = True`; PyTorch `main.py` computes it over the whole minibatch).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ..semi_supervised import SemiSupervisedConfig


@strict
class MeanTeacherConfig(SemiSupervisedConfig):
    r"""
    The fields of `SemiSupervisedConfig` (mu = `unlabeled_ratio` = 7, USB's; `unlabeled_views` = 2: the student and
    the teacher each see their own weak view of every unlabelled image), and:
    consistency_weight (`float`, defaults to 100.0): the final weight of the consistency cost (Tarvainen & Valpola,
        App. B.1: 100 on CIFAR-10 with the cost averaged over the classes).
    consistency_ramp_up (`float`, defaults to 4/15): the fraction of training over which the weight rises along the
        sigmoid exp(-5 (1 - t)^2) (`nn.ramp_up.sigmoid_ramp_up`); the reference's 40,000 of 150,000 steps.
    ema_decay_during_ramp_up (`float`, defaults to 0.99): alpha while the consistency weight ramps up (App. B.1).
    ema_decay (`float`, defaults to 0.999): alpha after the ramp-up. As in the reference's `update_ema_variables`,
        alpha is also capped by 1 - 1 / (step + 1), so that the teacher is the true average of the student's weights
        until the exponential average is more accurate.
    consistency_on_labeled (`bool`, defaults to `True`): also apply the consistency to the labelled images (each gets
        a second weak view, which the teacher sees), as the reference does; `False`: the unlabelled images only (USB).
    """

    model_type = "hf_ssl_mean_teacher"

    unlabeled_views: int = 2
    consistency_weight: float = 100.0
    consistency_ramp_up: float = 40_000 / 150_000
    ema_decay_during_ramp_up: float = 0.99
    ema_decay: float = 0.999
    consistency_on_labeled: bool = True

    def validate_mean_teacher(self):
        if self.unlabeled_views != 2:
            raise ValueError(f"Mean Teacher needs unlabeled_views = 2 (one weak view per network), got "
                             f"{self.unlabeled_views}")
        if self.consistency_weight < 0:
            raise ValueError(f"consistency_weight must be >= 0, got {self.consistency_weight}")
        if not 0.0 <= self.consistency_ramp_up <= 1.0:
            raise ValueError(f"consistency_ramp_up must be in [0, 1] (a fraction of training), got "
                             f"{self.consistency_ramp_up}")
        for name in ("ema_decay_during_ramp_up", "ema_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


__all__ = ["MeanTeacherConfig"]
