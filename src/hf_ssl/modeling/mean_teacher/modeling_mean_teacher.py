"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017) around a native transformers image classifier.

Each step sees B labelled images and mu * B unlabelled ones, every image in two independent weak views (flip and
translation): view 1 for the student f(.; theta), view 2 for the teacher f(.; theta'), whose weights theta' are an
EMA of the student's and get no gradient.

    l_s    = CE(f(x_l^1; theta), y)                                  the labelled batch (mean over B)
    J      = 1/N sum_i 1/K || softmax f(x_i^1; theta) - softmax f(x_i^2; theta') ||^2     (Eq. 2)
             over the N = B + mu B labelled and unlabelled images (the reference's minibatch; the unlabelled only
             with `consistency_on_labeled=False`), K classes (`losses.consistency.softmax_mse_loss`)
    loss   = l_s + w(t) J,      w(t) = w_max exp(-5 (1 - t / T)^2) for t < T, w_max after (App. B.1)
    after the optimizer step:   theta' <- alpha theta' + (1 - alpha) theta                  (Eq. 1)
                                alpha = min(1 - 1 / (step + 1), 0.99 during the ramp-up, 0.999 after)

t is the position in training (`self.progress`, 0..1), T = `consistency_ramp_up`. The student sees its labelled and
unlabelled views in one classifier call (BatchNorm over both, as the reference's mixed minibatch), the teacher its
views in another, in the model's mode: in training it normalises with its own batch statistics and keeps its own
running statistics (the reference runs `ema_model.train()` and averages `parameters()` only).

The teacher is what OUT publishes (`exported_model`): the paper reports the EMA model as the better one. Its argmax
on view 2 is recorded as the pseudo-labels of the step (weight 1: the consistency uses every image), for the monitor
that measures their accuracy against the hidden labels.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ...losses.consistency import softmax_mse_loss
from ...nn.momentum import copy_frozen, ema_update
from ...nn.ramp_up import sigmoid_ramp_up
from ..semi_supervised import SemiSupervisedModel, SemiSupervisedOutput
from .configuration_mean_teacher import MeanTeacherConfig


class MeanTeacherModel(SemiSupervisedModel):
    config_class = MeanTeacherConfig
    base_model_prefix = "mean_teacher"

    def __init__(self, config: MeanTeacherConfig):
        super().__init__(config)
        # theta' starts equal to theta (the reference copies the model), frozen: only `ema_update` moves it
        self.teacher = copy_frozen(self.classifier)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # transformers loads every floating-point weight as a new Parameter with requires_grad=True: freeze the
        # teacher again, or Trainer would hand it to the optimizer (as JointEmbeddingModel does for its EMA copies).
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).teacher.requires_grad_(False)
        return loaded

    def exported_model(self) -> PreTrainedModel:
        """The EMA teacher, a native `*ForImageClassification`: the paper's better model (Sec. 3, Fig. 3)."""
        return self.teacher

    def load_encoder_weights(self, checkpoint: str) -> None:
        """`--backbone CHECKPOINT` into the student, then the teacher made equal to it (weights and statistics)."""
        super().load_encoder_weights(checkpoint)
        ema_update(self.teacher, self.classifier, momentum=0.0)

    # --- schedules ---------------------------------------------------------------------------------------------

    def consistency_weight(self, progress: float | None = None) -> float:
        """w(t) = w_max * sigmoid ramp-up at a point of training (default: the current one)."""
        progress = float(self.progress) if progress is None else progress
        return self.config.consistency_weight * sigmoid_ramp_up(progress, self.config.consistency_ramp_up)

    def teacher_decay(self, step: int, progress: float) -> float:
        """alpha after optimizer step `step` (1 after the first) taken at `progress`: 0.99 during the consistency
        ramp-up, 0.999 after (App. B.1), capped by 1 - 1 / (step + 1) (the reference's `update_ema_variables`)."""
        config = self.config
        decay = config.ema_decay_during_ramp_up if progress < config.consistency_ramp_up else config.ema_decay
        return min(1.0 - 1.0 / (step + 1), decay)

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """theta' <- alpha theta' + (1 - alpha) theta, with alpha at the position of the step just taken (the
        `progress` buffer, not yet moved on). Parameters only: the teacher keeps the BatchNorm statistics it gathers
        on its own views with its own weights, which is what the exported teacher normalises with."""
        ema_update(self.teacher, self.classifier, self.teacher_decay(step, float(self.progress)), copy_buffers=False)

    # --- the loss ----------------------------------------------------------------------------------------------

    def forward(self, labeled_pixels: torch.Tensor, labels: torch.Tensor, unlabeled_pixels: torch.Tensor | None = None,
                unlabeled_index: torch.Tensor | None = None, teacher_labeled_pixels: torch.Tensor | None = None,
                **kwargs) -> SemiSupervisedOutput:
        """`teacher_labeled_pixels` (B, C, H, W): the labelled images' second weak view (the method's collator makes
        it when `consistency_on_labeled`); `unlabeled_pixels` (2, B * mu, C, H, W): the two weak views."""
        student_views, teacher_views, num_unlabeled = [labeled_pixels], [], 0
        if self.config.consistency_on_labeled and teacher_labeled_pixels is not None:
            teacher_views.append(teacher_labeled_pixels)
        if unlabeled_pixels is not None:
            student_unlabeled, teacher_unlabeled = self.unlabeled_views(unlabeled_pixels)
            student_views.append(student_unlabeled)
            teacher_views.append(teacher_unlabeled)
            num_unlabeled = student_unlabeled.shape[0]

        student_logits = self.joint_logits(*student_views)  # labelled (+ unlabelled) view 1, one call
        logits = student_logits[0]
        supervised = self.supervised_loss(logits, labels)
        if not teacher_views:  # nothing to be consistent on: the labels alone
            self.record_loss_terms(supervised)
            self.last_pseudo_labels = None
            return SemiSupervisedOutput(loss=supervised, logits=logits)

        with torch.no_grad():  # the teacher is a target: moved by the EMA only
            teacher_logits = self.teacher(pixel_values=torch.cat(teacher_views)).logits
        # the student rows that have a teacher row: the labelled ones only with their second view
        consistent_student = torch.cat(student_logits if len(teacher_views) == len(student_views)
                                       else student_logits[1:])
        consistency = softmax_mse_loss(consistent_student.float(), teacher_logits.float())
        weight = self.consistency_weight()
        loss = supervised + weight * consistency

        self.record_loss_terms(supervised, consistency, 1.0, consistency_weight=weight)
        if num_unlabeled:  # the teacher's classes of the unlabelled view 2, the last rows
            pseudo_labels = teacher_logits[teacher_logits.shape[0] - num_unlabeled:].argmax(dim=-1)
            self.record_pseudo_labels(unlabeled_index, pseudo_labels, torch.ones_like(pseudo_labels, dtype=torch.float))
        else:
            self.last_pseudo_labels = None
        return SemiSupervisedOutput(loss=loss, logits=logits)


__all__ = ["MeanTeacherModel"]
