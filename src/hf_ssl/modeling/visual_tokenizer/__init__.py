"""Visual tokenizer (BEiT, Bao et al. ICLR 2022; BEiT v2's VQ-KD, Peng et al. 2022): the targets of BEiT."""

from ...data.collators import crop_flip_collator
from ...registry import Method, Preset
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_visual_tokenizer import VisualVQConfig
from .modeling_visual_tokenizer import VisualVQModel, VisualVQOutput


# BEiT v2 reference (TOKENIZER.md, run_vqkd_training.py): AdamW, betas (0.9, 0.99), weight decay 1e-4, cosine
# schedule, 10 warmup epochs of 100, lr 5e-5 * batch / 128. `small` raises the lr for short schedules and uses
# fewer codes (a 60k-image dataset of 8x8 patches has no use for 8192).
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.99, weight_decay=1e-4, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ViT 32-wide x2, 16 px, patch 4; 32 codes of 8 dims, 1-block 32-wide decoder: for tests",
        config=dict(backbone="vit-test", backbone_overrides=dict(image_size=16, patch_size=4), codebook_size=32,
                    code_dim=8, kmeans_init_iterations=2, usage_window=2, decoder_hidden_size=32,
                    decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=64),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ViT-Ti width (192) x6, 32 px, patch 4 (MAE's small encoder); 1024 codes of 32 dims, 1-block decoder"
        f", {fifteen_minutes(1.8, 1.06)}",
        config=dict(backbone="vit-tiny", backbone_overrides=dict(num_hidden_layers=6, image_size=32, patch_size=4),
                    codebook_size=1024, code_dim=32, usage_window=50, decoder_hidden_size=192,
                    decoder_num_hidden_layers=1, decoder_num_attention_heads=3, decoder_intermediate_size=768),
        # 1.8 epochs = 845 steps: 13.3 minutes at the 1.06 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=128, **fifteen_minute_schedule(1.8),
                      warmup_steps=0.05),
    ),
    "base": Preset(
        "BEiT v2's VQ-KD: ViT-B/16 at 224 px, 8192 codes of 32 dims, 3-block 768-wide decoder; needs --teacher",
        config=dict(backbone="vit-base", backbone_overrides=dict(image_size=224, patch_size=16), target="teacher",
                    decoder_num_hidden_layers=3),
        training=dict(_OPTIM, learning_rate=5e-5 * 512 / 128, per_device_train_batch_size=64, num_train_epochs=100,
                      warmup_steps=0.1),
    ),
}

METHOD = Method(
    name="visual_tokenizer",
    summary="Visual tokenizer: ViT encoder + cosine codebook (VQ) + decoder of pixels or a teacher's features",
    paper="Peng et al., BEiT v2: Masked Image Modeling with Vector-Quantized Visual Tokenizers, 2022 "
          "(arXiv:2208.06366); Bao et al., BEiT, ICLR 2022",
    config_class=VisualVQConfig,
    model_class=VisualVQModel,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=crop_flip_collator,  # BEiT v2's tokenizer augmentation: crop (0.08-1) + flip
    tags=("visual-tokenizer", "vector-quantization", "masked-image-modeling"),
    display_name="Visual tokenizer",
    limitations=(
        "The exported encoder is the tokenizer's; the tokenizer itself (codebook, decoder) is in ssl/ and is meant "
        "as the target of BEiT pretraining (`hf-ssl pretrain --method beit --visual_tokenizer OUT`). Its frozen "
        "features are not what it is trained for."
    ),
)

__all__ = ["METHOD", "VisualVQConfig", "VisualVQModel", "VisualVQOutput"]
