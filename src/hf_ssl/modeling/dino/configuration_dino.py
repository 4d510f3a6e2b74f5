"""Configuration of DINO.

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in Self-Supervised Vision
Transformers", ICCV 2021 (arXiv:2104.14294). The defaults are the paper's (Sec. 3.1, Appendix and the reference
`main_dino.py`): a ViT with patch 16 at 224 px (`ViTConfig()` is ViT-B/16, Table 2), a 3-layer head
2048 -> bottleneck 256 -> weight-normalised 65536 logits, a teacher that is an EMA of the student with momentum
0.996 -> 1 along a cosine, student temperature 0.1, teacher temperature warmed up linearly from 0.04 to 0.07
over the first 30 epochs (of 100), centring momentum 0.9, multi-crop 2 x 224 (scale 0.4-1) + 8 x 96 (scale
0.05-0.4), and the last layer frozen during the first epoch.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import MultiCropConfig


@strict
class DINOConfig(MultiCropConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder (any transformers vision backbone; the paper's headline is
        ViT-S/16, and it reports ViT-B/16 and ResNet-50 too). Its `image_size` is the size of the two global
        crops. The TEACHER's copy is exported (the paper evaluates the teacher, Sec. 5.1 / Fig. 6).
    head_hidden_dim (`int`, defaults to 2048): width of the hidden layers of the DINO head (GELU, no BN).
    head_bottleneck_dim (`int`, defaults to 256): the L2-normalised bottleneck before the last layer.
    head_output_dim (`int`, defaults to 65536): K, the number of output logits (Sec. 3.1, Appendix).
    head_num_layers (`int`, defaults to 3): linear layers of the head's MLP (the last one to the bottleneck).
    head_batch_norm (`bool`, defaults to `False`): BatchNorm after the head's hidden layers (the reference
        `--use_bn_in_head`, off for its ViTs). The ResNet presets turn it on: without it they collapse to uniform
        outputs (loss = log K) within ~50 steps, measured on digits and Fashion-MNIST.
    norm_last_layer (`bool`, defaults to `True`): fix the weight-norm gain of the last layer to 1 (the reference
        `--norm_last_layer`, "makes the training more stable"; its ViT-S recipes sometimes turn it off).
    student_temperature (`float`, defaults to 0.1): tau_s of the student softmax (Eq. 1).
    teacher_temperature (`float`, defaults to 0.07): tau_t after the warm-up (Sec. 3.1: "a linear warm-up from
        0.04 to 0.07 during the first 30 epochs").
    warmup_teacher_temperature (`float`, defaults to 0.04): tau_t at the start of training.
    teacher_temperature_warmup (`float`, defaults to 0.3): fraction of training over which tau_t rises linearly
        (30 of the reference's default 100 epochs); 0 = `teacher_temperature` from the start.
    teacher_momentum (`float`, defaults to 0.996): lambda at the start of the teacher EMA
        theta_t <- lambda theta_t + (1 - lambda) theta_s; it follows a cosine to 1 over training (Sec. 3.1).
    center_momentum (`float`, defaults to 0.9): m of the centre c <- m c + (1 - m) mean(teacher outputs) (Eq. 4).
    freeze_last_layer_steps (`int`, defaults to 1251): optimizer steps from the start during which the head's
        last layer gets no update (the reference `--freeze_last_layer 1` epoch: 1251 steps at batch 1024).
    num_local_crops (`int`, defaults to 8): low-resolution crops per image, seen by the student only.
    local_crop_size (`int`, defaults to 96): side of the local crops (smaller than the global size).
    global_crop_min_scale, global_crop_max_scale (`float`, default to 0.4, 1.0): area range of the global crops.
    local_crop_min_scale, local_crop_max_scale (`float`, default to 0.05, 0.4): area range of the local crops.
    gather_distributed (`bool`): inherited; the DINO loss is per sample, and the centre is always the mean over
        the teacher outputs of all processes (as the reference `update_center`).
    initializer_range (`float`): inherited; unused (the DINO head initialises itself: truncated normal 0.02).
    """

    model_type = "hf_ssl_dino"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="vit")}

    head_hidden_dim: int = 2048
    head_bottleneck_dim: int = 256
    head_output_dim: int = 65536
    head_num_layers: int = 3
    head_batch_norm: bool = False
    norm_last_layer: bool = True
    student_temperature: float = 0.1
    teacher_temperature: float = 0.07
    warmup_teacher_temperature: float = 0.04
    teacher_temperature_warmup: float = 0.3
    teacher_momentum: float = 0.996
    center_momentum: float = 0.9
    freeze_last_layer_steps: int = 1251
    num_local_crops: int = 8
    global_crop_min_scale: float = 0.4
    local_crop_max_scale: float = 0.4

    def validate_dino(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        for name in ("head_hidden_dim", "head_bottleneck_dim", "head_output_dim", "head_num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("student_temperature", "teacher_temperature", "warmup_teacher_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.teacher_temperature_warmup <= 1.0:
            raise ValueError(f"teacher_temperature_warmup must be in [0, 1] (a fraction of training), got "
                             f"{self.teacher_temperature_warmup}")
        if not 0.0 <= self.teacher_momentum <= 1.0:
            raise ValueError(f"teacher_momentum must be in [0, 1], got {self.teacher_momentum}")
        if not 0.0 <= self.center_momentum < 1.0:
            raise ValueError(f"center_momentum must be in [0, 1), got {self.center_momentum}")
        if self.freeze_last_layer_steps < 0:
            raise ValueError(f"freeze_last_layer_steps must be >= 0, got {self.freeze_last_layer_steps}")


__all__ = ["DINOConfig"]
