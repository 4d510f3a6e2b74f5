"""Masked Autoencoders (He et al., CVPR 2022)."""

from ...data.collators import crop_flip_collator
from ...registry import Method, Preset
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_mae import MAEConfig
from .convert_mae import to_vit_mae
from .modeling_mae import MAEForPreTraining, MAEOutput


# Optimiser recipe of the paper (Table 8): AdamW, betas (0.9, 0.95), weight decay 0.05, cosine schedule
# with warmup; lr = 1.5e-4 * batch / 256. `tiny` is for tests; `small` trains in minutes on a laptop
# CPU (lr raised for short schedules); `base` is the paper's ViT-B/16 setting.
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.05, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ViT 32-wide x2, 16 px, patch 4; 1-block decoder: a step in milliseconds, for tests",
        config=dict(backbone="vit-test", backbone_overrides=dict(image_size=16, patch_size=4),
                    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                    decoder_intermediate_size=64),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ViT-Ti width (192) x6, 32 px, patch 4; 128-wide 2-block decoder; flips, no crops; batch 256: small centred "
        f"images on a CPU, {fifteen_minutes(6, 1.586)}",
        config=dict(backbone="vit-tiny", backbone_overrides=dict(num_hidden_layers=6, image_size=32, patch_size=4),
                    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
                    decoder_intermediate_size=512, crop_min_scale=1.0),
        # No random resized crops (the paper's 0.2-1): Fashion-MNIST's garments are centred and the probes see whole
        # images. At 4.6 epochs of batch 128 on Fashion-MNIST (kNN k=20, full test split): crops of 0.8-1 84.45%,
        # none 84.68%; none with unnormalised targets 84.58% (with crops of 0.2-1: 82.34%); none with lr 3e-3 83.87%;
        # none with the 4-block decoder (3 epochs in the same time) 84.32%.
        # Batch 256 trains about 1.15x the images/s of batch 128 here, which buys 6 epochs in the 15 minutes: kNN
        # 85.26% (lr 2e-3, 889 s alone on the Xeon with AMX, 1.586 steps/s); 6 epochs of batch 128 reach 85.71% but
        # took 1,031 s; 4.6 epochs of batch 128 (the preset before) 84.69%. Raw pixels at 32 px: 85.20%. The same
        # recipe took 16.5 minutes on a slower hour (1.43 steps/s): 5.5 epochs would fit both (not measured). With
        # --seed 1: kNN 84.73%, linear 87.56% (849 s).
        training=dict(_OPTIM, learning_rate=2e-3, per_device_train_batch_size=256, **fifteen_minute_schedule(6),
                      warmup_steps=0.05),
    ),
    "base": Preset(
        "the paper's ViT-B/16 at 224 px with the 512x8 decoder (batch 4096, 800 epochs, 40 warmup)",
        config=dict(backbone="vit-base", backbone_overrides=dict(image_size=224, patch_size=16)),
        training=dict(_OPTIM, learning_rate=1.5e-4 * 4096 / 256, per_device_train_batch_size=64,
                      num_train_epochs=800, warmup_steps=0.05),
    ),
}

METHOD = Method(
    name="mae",
    summary="Masked Autoencoder: reconstruct the pixels of 75% randomly masked patches from the visible 25%",
    paper="He et al., Masked Autoencoders Are Scalable Vision Learners, CVPR 2022 (arXiv:2111.06377)",
    config_class=MAEConfig,
    model_class=MAEForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=crop_flip_collator,  # the paper's only augmentation: crop (scale 0.2-1) + flip
    tags=("masked-image-modeling",),
    display_name="MAE",
    reference_model=to_vit_mae,  # transformers' ViTMAEForPreTraining, the port of the reference code: same weights
    limitations=(
        "MAE features are known to be weaker under frozen-feature protocols (kNN, linear probe) than "
        "contrastive ones and strongest after fine-tuning (He et al. 2022, Sec. 5); judge it by fine-tuning."
    ),
)

__all__ = ["MAEConfig", "MAEForPreTraining", "MAEOutput", "METHOD"]
