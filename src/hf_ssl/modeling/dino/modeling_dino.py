"""DINO around a stock transformers backbone (ViT, ResNet, ConvNeXt, ...).

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021 (arXiv:2104.14294).

Self-distillation without labels (Sec. 3.1, Alg. 1): a student (backbone + DINO head) sees every crop, the 2
global crops and the local ones; a teacher with the same architecture sees the 2 global crops only. The
student's softmax (temperature tau_s) of each crop is trained to match the teacher's centred, sharpened softmax
(temperature tau_t) of every *other* global crop (Eq. 3, `dino_loss`). The teacher gets no gradient: it is an
EMA of the student with a cosine schedule 0.996 -> 1. Centring (subtracting a running mean c of the teacher
outputs, Eq. 4) and sharpening (low tau_t) together avoid collapse. The teacher is what is exported: the paper
evaluates it (it performs better than the student throughout training, Sec. 5.1 / Fig. 6).

As the reference `MultiCropWrapper`, the backbone runs once per resolution group (the 2 global crops together,
then all local crops together) and the head once on all crops.

Per optimizer step, `on_optimizer_step` (called by `OptimizerStepCallback`) moves the teacher towards the student,
updates the centre from the teacher outputs staged by this step's forward passes (once per optimizer step, also
with gradient accumulation). The position in training that `MethodModel` records after each step ends the freeze
of the head's last layer and schedules the teacher temperature and momentum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ...losses.dino import dino_loss, update_center
from ..joint_embedding import NUM_GLOBAL_CROPS, JointEmbeddingModel, per_image
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import DINOHead
from ...nn.momentum import copy_frozen, cosine_momentum, cosine_schedule, ema_update

from .configuration_dino import DINOConfig



@dataclass
class DINOOutput(ModelOutput):
    """
    loss: the cross-entropy between the teacher's and the student's outputs over every (global crop, other crop)
        pair (None when `return_loss=False`).
    student_logits: (B, V, head_output_dim) student head outputs of every crop, the 2 global crops first.
    teacher_logits: (B, 2, head_output_dim) teacher head outputs of the 2 global crops (before centring).
    pooled_features: (B, V, D) student encoder representations of every crop (the [CLS] token for ViT, global
        average pooling for conv backbones).
    """

    loss: torch.FloatTensor | None = None
    student_logits: torch.FloatTensor | None = None
    teacher_logits: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class DINOForPreTraining(JointEmbeddingModel):
    config_class = DINOConfig
    base_model_prefix = "dino"

    def __init__(self, config: DINOConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.head = DINOHead(
            feature_dim(config.backbone_config), output_dim=config.head_output_dim, hidden_dim=config.head_hidden_dim,
            bottleneck_dim=config.head_bottleneck_dim, num_layers=config.head_num_layers,
            norm_last_layer=config.norm_last_layer, batch_norm=config.head_batch_norm,
        )
        self.teacher_backbone = copy_frozen(self.backbone)
        self.teacher_head = copy_frozen(self.head)
        # The running mean c of the teacher outputs (Eq. 4): a buffer, saved in checkpoints and restored on resume.
        # The schedules read the position in training that MethodModel keeps (`num_optimizer_steps`, `progress`).
        self.register_buffer("center", torch.zeros(1, config.head_output_dim))
        self._staged_teacher_logits: list[torch.Tensor] = []
        # The DINO heads initialise themselves (reset_parameters: truncated normal 0.02, weight-norm gain 1);
        # `_init_weights` must not re-draw their linear layers with the base class's normal init.
        self._self_initialised = {id(m) for head in (self.head, self.teacher_head) for m in head.modules()}
        self.post_init()  # the teacher starts equal to the student (JointEmbeddingModel.post_init)

    def _init_weights(self, module: nn.Module) -> None:
        if id(module) in self._self_initialised:
            return
        super()._init_weights(module)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.teacher_backbone, self.backbone), (self.teacher_head, self.head)]

    def freeze_untrained_parts(self) -> None:
        super().freeze_untrained_parts()
        # with norm_last_layer the weight-norm gain stays 1 (a reload would make it trainable again)
        self.head.last_layer.parametrizations.weight.original0.requires_grad_(not self.config.norm_last_layer)

    def exported_model(self) -> nn.Module:
        """The teacher's backbone: the paper evaluates the teacher (Sec. 5.1)."""
        return self.teacher_backbone

    # --- schedules -------------------------------------------------------------------------------------------

    def teacher_temperature(self, progress: float | None = None) -> float:
        """tau_t at a point of training (default: the current one): linear from `warmup_teacher_temperature` to
        `teacher_temperature` over the first `teacher_temperature_warmup` of training, then constant."""
        progress = float(self.progress) if progress is None else progress
        final = self.config.teacher_temperature
        return cosine_schedule(progress, 1.0, start=final, end=final, warmup_steps=self.config.teacher_temperature_warmup,
                               warmup_start=self.config.warmup_teacher_temperature)

    def teacher_momentum(self, progress: float | None = None) -> float:
        """lambda at a point of training (default: the current one): cosine from `teacher_momentum` to 1."""
        progress = float(self.progress) if progress is None else progress
        return cosine_momentum(progress, 1.0, base=self.config.teacher_momentum, final=1.0)

    @property
    def last_layer_frozen(self) -> bool:
        """True during the first `freeze_last_layer_steps` optimizer steps (the reference cancels the last layer's
        gradients during the first `freeze_last_layer` epochs)."""
        return int(self.num_optimizer_steps) < self.config.freeze_last_layer_steps

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """The per-optimizer-step side effects (called by `OptimizerStepCallback` after each step, with progress =
        the position of the next step in training).

        The EMA of the step just taken uses the momentum at that step's own position (the `progress` buffer
        before it is overwritten: 0 after the first step, as the reference's `momentum_schedule[it]`). Only the
        parameters are averaged: the teacher keeps its own BatchNorm statistics, gathered on the global crops it
        sees with its own weights (the reference averages `parameters()` only), since it is what is exported.
        The centre moves to the mean of the teacher outputs staged by this step's forward passes (Eq. 4)."""
        momentum = self.teacher_momentum()
        for teacher, student in self.momentum_pairs():
            ema_update(teacher, student, momentum, copy_buffers=False)
        if self._staged_teacher_logits:
            self.center.copy_(update_center(self.center, self._staged_teacher_logits, self.config.center_momentum))
            self._staged_teacher_logits.clear()

    # --- forward ---------------------------------------------------------------------------------------------

    def student_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The student head on (N, D) features. While the last layer is frozen, the gradient of its (weight-norm)
        weight is zeroed by a hook registered at this forward (a hook on the Parameters themselves would be lost
        when `from_pretrained` replaces them), so g and v get zero gradients: no SGD/Adam update, and AdamW's
        decoupled decay only rescales v, which the weight normalisation ignores."""
        if not (self.last_layer_frozen and torch.is_grad_enabled()):
            return self.head(features)
        # DINOHead.forward with the hook in between: last_layer(normalize(mlp(x)))
        weight = self.head.last_layer.weight  # computed from g and v by the parametrisation, differentiable
        if weight.requires_grad:
            weight.register_hook(torch.zeros_like)
        return F.linear(F.normalize(self.head.mlp(features), dim=-1), weight)

    def forward(self, pixel_values: torch.Tensor, local_pixel_values: torch.Tensor | None = None,
                return_loss: bool = True, **kwargs) -> DINOOutput:
        """pixel_values: (B, 2, C, H, W) the two global crops; local_pixel_values: (B, V_local, C, h, w) the
        local crops (absent with `num_local_crops = 0`)."""
        batch = pixel_values.shape[0]
        features, num_views = self.encode_multi_crop(pixel_values, local_pixel_values)  # view-major, globals first
        student = self.student_logits(features)
        self.last_embeddings = student[: NUM_GLOBAL_CROPS * batch].detach()

        loss = teacher = None
        if return_loss:
            with torch.no_grad():  # the teacher is moved by the EMA only, never by this gradient
                teacher = self.teacher_head(self.encode_multi_crop(pixel_values, backbone=self.teacher_backbone)[0])
            loss = dino_loss(student.chunk(num_views), teacher.chunk(NUM_GLOBAL_CROPS), self.center,
                             self.config.student_temperature, self.teacher_temperature())
            if self.training:
                self._staged_teacher_logits.append(teacher.detach())  # the centre moves in on_optimizer_step
        return DINOOutput(
            loss=loss,
            student_logits=per_image(student, num_views),
            teacher_logits=None if teacher is None else per_image(teacher, NUM_GLOBAL_CROPS),
            pooled_features=per_image(features, num_views),
        )



__all__ = ["DINOForPreTraining", "DINOOutput"]
