"""Masked language modelling, BERT (Devlin et al., NAACL 2019), exported as a native `*ForMaskedLM`."""

from ...data.language_modeling import MaskedLanguageModelingCollator
from ...registry import Method, Preset
from .configuration_mlm import MLMConfig
from .modeling_mlm import MLMForPreTraining, MLMOutput


def make_collator(config: MLMConfig) -> MaskedLanguageModelingCollator:
    """Dynamic masking: every batch gets fresh 80/10/10 corruption of a new `mlm_probability` choice."""
    backbone = config.backbone_config
    if config.mask_token_id is None or backbone.pad_token_id is None:
        raise ValueError("the [MASK] and pad token ids are set from the tokenizer before the collator is built")
    return MaskedLanguageModelingCollator(
        pad_token_id=backbone.pad_token_id, mask_token_id=config.mask_token_id, vocab_size=backbone.vocab_size,
        mlm_probability=config.mlm_probability, mask_replace_prob=config.mask_replace_prob,
        random_replace_prob=config.random_replace_prob, whole_word_mask=config.whole_word_mask)


# The paper (Sec. A.2): Adam with lr 1e-4, beta1 0.9, beta2 0.999, L2 weight decay 0.01, warmup over the first 10,000
# steps then linear decay, batch 256 sequences of up to 512 tokens, 1M steps, dropout 0.1. `tiny` is for tests;
# `small` is a 4-layer, 256-wide BERT (Turc et al. 2019's BERT-Mini) that trains on a CPU in minutes on Austen (a
# higher lr for a short schedule); `base` is BERT-base with the paper's recipe (128-token blocks, its first phase).
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.999, weight_decay=0.01, lr_scheduler_type="linear")

PRESETS = {
    "tiny": Preset(
        "BERT 64-wide x2, 64-token blocks, WordPiece up to 1,000 tokens: a step in milliseconds, for tests",
        config=dict(backbone="bert-test", max_length=64, tokenizer_vocab_size=1000),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=16, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "BERT-Mini (256 wide, 4 layers, 4 heads), 128-token blocks, WordPiece up to 8,192 tokens trained on the "
        "corpus: CPU-trainable on Austen",
        config=dict(backbone="bert-mini", max_length=128, tokenizer_vocab_size=8192),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=3,
                      warmup_steps=0.06),
    ),
    "base": Preset(
        "BERT-base (768 wide, 12 layers, 12 heads, 110M parameters), 128-token blocks, 30,522-token WordPiece; the "
        "paper's optimiser (batch 256, lr 1e-4, 10k warmup steps)",
        config=dict(backbone="bert-base", max_length=128, tokenizer_vocab_size=30522),
        training=dict(_OPTIM, learning_rate=1e-4, per_device_train_batch_size=256, max_steps=1_000_000,
                      warmup_steps=10_000),
    ),
}

METHOD = Method(
    name="mlm",
    summary="BERT masked language modelling: predict 15% chosen tokens (80% [MASK], 10% random, 10% kept), "
            "optionally with next-sentence prediction",
    paper="Devlin et al., BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding, "
          "NAACL 2019 (arXiv:1810.04805)",
    config_class=MLMConfig,
    model_class=MLMForPreTraining,
    modality="text",
    presets=PRESETS,
    default_preset="small",
    make_collator=make_collator,
    tags=("bert", "masked-language-modeling", "fill-mask"),
    display_name="MLM (BERT)",
    limitations=(
        "A tokenizer trained on a small corpus splits unfamiliar words into many pieces and maps characters it never "
        "saw to [UNK]. The model reads at most `max_length` tokens; the fill-mask pipeline does not truncate."
    ),
)

__all__ = ["MLMConfig", "MLMForPreTraining", "MLMOutput", "METHOD"]
