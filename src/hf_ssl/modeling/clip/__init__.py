"""CLIP (Radford et al., ICML 2021): contrastive image-text pretraining, exported as a native `CLIPModel`."""

from ...data.collators import ImageCaptionCollator
from ...data.transforms import random_resized_crop_flip
from ...registry import Method, Preset
from .configuration_clip import CLIPPretrainingConfig
from .modeling_clip import CLIPForPreTraining, CLIPPretrainingOutput


def make_collator(config: CLIPPretrainingConfig) -> ImageCaptionCollator:
    """The paper's only augmentation, a random square crop (no flip: a caption may say "left"), and padded captions."""
    augment = random_resized_crop_flip(config.image_size, config.crop_min_scale, horizontal_flip=False)
    return ImageCaptionCollator(config.image_mean, config.image_std, config.text_config.pad_token_id, augment=augment)


# The paper: Adam(W) with decoupled weight decay 0.2, betas (0.9, 0.98), eps 1e-6, cosine schedule, batch 32,768,
# 32 epochs, lr 5e-4 (ViT-B). `tiny` is for tests; `small` trains a ViT-Ti-width image tower and a 4-layer text
# tower on small images on a CPU (a higher lr for a short schedule); `base` is ViT-B/16 with the paper's recipe.
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.98, adam_epsilon=1e-6, weight_decay=0.2, lr_scheduler_type="cosine")
# CLIP's own normalisation (the constants of its released image processors)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

PRESETS = {
    "tiny": Preset(
        "ViT 32-wide x2 at 16 px / text transformer 32-wide x2, projection 16: a step in milliseconds, for tests",
        config=dict(backbone="clip-test", tokenizer_vocab_size=800, image_mean=CLIP_MEAN, image_std=CLIP_STD),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ViT-Ti width (192) x6 at 32 px, patch 4 / text transformer 128-wide x4, 77 tokens; projection 128; "
        "BPE vocabulary up to 4,096 tokens trained on the captions",
        config=dict(backbone="clip-small", tokenizer_vocab_size=4096, image_mean=CLIP_MEAN, image_std=CLIP_STD),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, num_train_epochs=10,
                      warmup_steps=0.05),
    ),
    "base": Preset(
        "the paper's ViT-B/16 at 224 px and 12-layer 512-wide text transformer, 77 tokens, 49,408-token BPE "
        "(batch 32,768, 32 epochs)",
        config=dict(backbone="clip-vit-b16", image_mean=CLIP_MEAN, image_std=CLIP_STD),
        training=dict(_OPTIM, learning_rate=5e-4, per_device_train_batch_size=128, num_train_epochs=32,
                      warmup_steps=2000),
    ),
}

METHOD = Method(
    name="clip",
    summary="CLIP: align images and their captions in one embedding space with a symmetric contrastive loss",
    paper="Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021 "
          "(arXiv:2103.00020)",
    config_class=CLIPPretrainingConfig,
    model_class=CLIPForPreTraining,
    modality="image-text",
    presets=PRESETS,
    default_preset="small",
    make_collator=make_collator,
    tags=("clip", "contrastive", "zero-shot-image-classification"),
    display_name="CLIP",
    limitations=(
        "Zero-shot accuracy depends on the prompts: class names and templates unlike the training captions score "
        "lower. Captions built from labels teach only what the labels say. The text tower reads at most "
        "`max_position_embeddings` tokens; `pipeline` does not truncate, so keep candidate labels short."
    ),
)

__all__ = ["CLIPPretrainingConfig", "CLIPForPreTraining", "CLIPPretrainingOutput", "METHOD"]
