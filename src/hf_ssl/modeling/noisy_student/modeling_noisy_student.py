"""Noisy Student (Xie et al., CVPR 2020) around a native transformers image classifier, in rounds.

Round 0 trains the first teacher on the labels (with the student's noise: the paper's baselines train with
RandAugment, dropout and stochastic depth too); in round r >= 1 the frozen teacher labels each batch's clean (weakly
augmented, not RandAugmented) unlabelled images, and the noised student learns

    q_u    = softmax(teacher(x_u) / T)                  soft labels (T = 1), or their argmax (hard labels)
    w_u    = selection(q_u)                             the paper's confidence filter (0.3), or top k per class
    l_u    = 1/N_u sum_u w_u * (-sum_c q_uc log softmax(student(noise(x_u)))_c)   (losses.consistency)
    loss   = CE(student(noise(x_l)), y_l) + unlabeled_weight * l_u

noise = RandAugment on the de-normalised pixels (`nn.rand_augment`, in forward on the training device, training mode
only), dropout on the classifier's input (`classifier_dropout`, the base's forward pre-hook on the head, training mode
only), stochastic depth where the backbone has it (`drop_path_rate`). The student is re-initialised at each round.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ...losses.consistency import soft_cross_entropy
from ...nn.normalization import PixelNormalization
from ...nn.pseudo_labeling import Selection, soft_targets
from ...nn.rand_augment import rand_augment
from ..teacher_student import TeacherStudentModel
from .configuration_noisy_student import NoisyStudentConfig


class NoisyStudentModel(TeacherStudentModel):
    config_class = NoisyStudentConfig
    base_model_prefix = "noisy_student"

    def teacher_probabilities(self, teacher: PreTrainedModel, pixels: torch.Tensor) -> torch.Tensor:
        """softmax(teacher logits / T), in float32: the soft labels and the confidences the selection reads."""
        return soft_targets(teacher(pixel_values=pixels).logits.float(), self.config.temperature)

    def student_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """RandAugment of the student's images while training: undo the normalisation, augment in [0, 1], redo it."""
        if not self.training or self.config.rand_augment_ops == 0:
            return pixels
        # made here, not in __init__: from_pretrained builds the model on the meta device, where its tensors would be
        normalization = PixelNormalization(self.config.image_mean, self.config.image_std)
        images = normalization.invert(pixels.float()).clamp_(0.0, 1.0)
        return normalization(rand_augment(images, num_ops=self.config.rand_augment_ops)).to(pixels.dtype)

    def unlabeled_loss(self, logits: torch.Tensor, teacher_probs: torch.Tensor, selection: Selection) -> torch.Tensor:
        """The soft cross-entropy with the teacher's distribution, or the hard one with its argmax."""
        if not self.config.soft_labels:
            return super().unlabeled_loss(logits, teacher_probs, selection)
        return soft_cross_entropy(logits.float(), teacher_probs, selection.weights)


__all__ = ["NoisyStudentModel"]
