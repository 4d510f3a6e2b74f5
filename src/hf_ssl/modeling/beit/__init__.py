"""BEiT (Bao et al., ICLR 2022): predict the visual tokens of blockwise-masked patches."""

from ...data.collators import crop_flip_collator
from ...registry import Method, Preset
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_beit import BEiTConfig
from .modeling_beit import BEiTForPreTraining, BEiTOutput


# BEiT's pretraining recipe (paper Appendix, reference run_beit_pretraining.py): AdamW, betas (0.9, 0.999), weight
# decay 0.05, lr 1.5e-3 at batch 2048 with 10 warmup epochs of 800, cosine decay. `small` keeps MAE's small
# encoder and lr for a like-for-like comparison; its 8x8 patch grid takes blocks of at least 4 patches (16 of 196
# in the paper: the same share of the grid, rounded down).
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.999, weight_decay=0.05, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ViT 32-wide x2, 16 px, patch 4 (4x4 patches, blocks of at least 2): for tests; needs --tokenizer",
        config=dict(backbone="vit-test", backbone_overrides=dict(image_size=16, patch_size=4),
                    mask_min_block_patches=2),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ViT-Ti width (192) x6, 32 px, patch 4 (MAE's small encoder), blocks of at least 4 of 64 patches"
        f", {fifteen_minutes(1.2, 0.733)}",
        config=dict(backbone="vit-tiny", backbone_overrides=dict(num_hidden_layers=6, image_size=32, patch_size=4),
                    mask_min_block_patches=4),
        # 1.2 epochs = 563 steps: 12.8 minutes at the 0.733 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=1.5e-3, per_device_train_batch_size=128, **fifteen_minute_schedule(1.2),
                      warmup_steps=0.05),
    ),
    "base": Preset(
        "the paper's ViT-B/16 at 224 px, 40% blockwise masking (batch 2048, 800 epochs, 10 warmup)",
        config=dict(backbone="vit-base", backbone_overrides=dict(image_size=224, patch_size=16)),
        training=dict(_OPTIM, learning_rate=1.5e-3, per_device_train_batch_size=64, num_train_epochs=800,
                      warmup_steps=10 / 800),
    ),
}

METHOD = Method(
    name="beit",
    summary="BEiT: predict the visual tokens (from a trained visual_tokenizer) of 40% blockwise-masked patches",
    paper="Bao et al., BEiT: BERT Pre-Training of Image Transformers, ICLR 2022 (arXiv:2106.08254)",
    config_class=BEiTConfig,
    model_class=BEiTForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=crop_flip_collator,  # crop (0.08-1) + flip; the reference's colour jitter is left out: it changes the
    # tokens the tokenizer assigns, and gray images have no colour. The masks are drawn in forward, on the device.
    tags=("masked-image-modeling", "beit"),
    display_name="BEiT",
    limitations=(
        "BEiT is only as good as its visual tokenizer, and its encoder is meant to be fine-tuned: like other "
        "masked-image-modelling encoders, its frozen features are weaker under kNN and linear probing than "
        "contrastive ones. The encoder is a plain ViT (without the paper's layer scale and relative position bias)."
    ),
    prerequisites={"tokenizer": "visual_tokenizer"},
)

__all__ = ["BEiTConfig", "BEiTForPreTraining", "BEiTOutput", "METHOD"]
