"""DINO (Caron et al., ICCV 2021)."""

from ...data.collators import multi_crop_collator
from ...registry import Method, Preset
from ..presets import RESNET_STEM_AT_32_PX, SMALL_RESNET, fifteen_minute_schedule, fifteen_minutes, tiny_preset
from .configuration_dino import DINOConfig
from .modeling_dino import DINOForPreTraining, DINOOutput


# The paper trains its ViTs with AdamW: lr = 0.0005 x batch / 256 (the reference `main_dino.py` linear scaling
# rule) with 10 warm-up epochs and a cosine decay, weight decay following a cosine from 0.04 to 0.4, gradients
# clipped at norm 3, and the last layer frozen for the first epoch. transformers' Trainer keeps the weight decay
# constant (0.04 here, the schedule's start) and clips the global gradient norm (3.0) where the reference clips
# each parameter's. `small` uses the reference rule at batch 256: 5e-4 (the reference's AdamW recipe applied to
# a ResNet-18; its own ResNet-50 run uses SGD).
_OPTIM = dict(weight_decay=0.04, max_grad_norm=3.0, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        tiny_preset("2 x 16 px + 2 x 8 px crops, head 32 -> bottleneck 16 -> 64 logits, last layer frozen for 1 step"),
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16),
                    head_hidden_dim=32, head_bottleneck_dim=16, head_output_dim=64, num_local_crops=2,
                    local_crop_size=8, freeze_last_layer_steps=1, head_batch_norm=True),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        f"{SMALL_RESNET}, multi-crop 2 x 32 px + 4 x 16 px, head "
        "512 -> 512 -> 512 -> bottleneck 128 -> 4096 logits (the paper's 2048 / 256 / 65536 scaled to a 512-d "
        "encoder and a 10-class dataset) with BatchNorm (without it a ResNet collapses to uniform outputs), last layer "
        "frozen for "
        "the first 33 steps, the warm-up (the paper: the first of hundreds of epochs; here 1.4 in all)"
        f", {fifteen_minutes(1.4, 0.429)}",
        config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32),
                    head_hidden_dim=512, head_bottleneck_dim=128, head_output_dim=4096, num_local_crops=4,
                    local_crop_size=16, freeze_last_layer_steps=33, head_batch_norm=True),
        # 1.4 epochs = 329 steps: 12.8 minutes at the 0.429 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=5e-4, per_device_train_batch_size=256, **fifteen_minute_schedule(1.4),
                      warmup_steps=0.1),
        # model step fp32 -> bf16 here: 1,645 -> 1,317 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "the paper's headline ViT-S/16 at 224 px, multi-crop 2 x 224 px + 8 x 96 px, head 2048 -> 256 -> 65536, "
        "batch 1024 (16 x 64), 100 epochs with 10 warm-up epochs, teacher temperature 0.04 -> 0.07 over 30",
        config=dict(backbone="vit-small", backbone_overrides=dict(image_size=224, patch_size=16),
                    head_hidden_dim=2048, head_bottleneck_dim=256, head_output_dim=65536, num_local_crops=8,
                    local_crop_size=96, freeze_last_layer_steps=1251),
        training=dict(_OPTIM, learning_rate=0.0005 * 1024 / 256, per_device_train_batch_size=64,
                      num_train_epochs=100, warmup_steps=0.1),
    ),
}

METHOD = Method(
    name="dino",
    summary="DINO: a student matches the centred, sharpened output of its EMA teacher across multi-crop views",
    paper=("Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin, Emerging Properties in Self-Supervised "
           "Vision Transformers, ICCV 2021 (arXiv:2104.14294)"),
    config_class=DINOConfig,
    model_class=DINOForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=multi_crop_collator,
    tags=("self-distillation", "momentum-encoder", "multi-crop"),
    display_name="DINO",
    limitations=(
        "The exported encoder is the EMA teacher, as the paper evaluates. Trained with AdamW and a cosine schedule "
        "as the paper, but with a constant weight decay (0.04; the paper's rises to 0.4 along a cosine) and "
        "clipping of the global gradient norm at 3 (the paper clips each parameter's). ViTs here have no "
        "stochastic depth (the paper's ViT-S uses drop-path 0.1) and layer-norm epsilon 1e-12 (the reference "
        "1e-6). The teacher temperature and momentum follow the paper's schedules per optimizer step over the run "
        "(--max_steps / epochs), and the last-layer freeze is counted in optimizer steps "
        "(freeze_last_layer_steps), so its length in epochs depends on the dataset and batch size. BatchNorm in "
        "conv backbones normalises over each process's own crops of one resolution (no SyncBN). "
        f"{RESNET_STEM_AT_32_PX}, and 4x4 of a 16 px local crop."
    ),
)

__all__ = ["DINOConfig", "DINOForPreTraining", "DINOOutput", "METHOD"]
