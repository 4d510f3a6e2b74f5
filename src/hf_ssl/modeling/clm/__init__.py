"""Causal language modelling, GPT-2 style (Radford et al. 2019), exported as a native `*ForCausalLM`."""

from ...data.language_modeling import CausalLanguageModelingCollator
from ...registry import Method, Preset
from .configuration_clm import CLMConfig
from .modeling_clm import CLMForPreTraining, CLMOutput


def make_collator(config: CLMConfig) -> CausalLanguageModelingCollator:
    pad = config.backbone_config.pad_token_id
    return CausalLanguageModelingCollator(pad_token_id=pad if pad is not None else config.backbone_config.eos_token_id)


# GPT-2 (and GPT-1, Sec. 4.1): Adam, lr 2.5e-4 with linear warmup over 2,000 steps then cosine decay, weight decay
# 0.01, batch 512 sequences of 1,024 tokens. `tiny` is for tests; `small` is a 4-layer, 256-wide GPT-2 that trains on
# a CPU in minutes on Austen; `base` is GPT-2 small (124M parameters) with 1,024-token blocks.
_OPTIM = dict(adam_beta1=0.9, adam_beta2=0.999, weight_decay=0.01, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "GPT-2 64-wide x2, 64-token blocks, byte-level BPE up to 1,000 tokens: a step in milliseconds, for tests",
        config=dict(backbone="gpt2-test", max_length=64, tokenizer_vocab_size=1000),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=16, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "GPT-2 256 wide, 4 layers, 4 heads, 128-token blocks, byte-level BPE up to 8,192 tokens trained on the corpus",
        config=dict(backbone="gpt2-mini", max_length=128, tokenizer_vocab_size=8192),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=3,
                      warmup_steps=0.06),
    ),
    "base": Preset(
        "GPT-2 small (768 wide, 12 layers, 124M parameters), 1,024-token blocks, 50,257-token byte-level BPE",
        config=dict(backbone="gpt2-base", max_length=1024, tokenizer_vocab_size=50257),
        training=dict(_OPTIM, learning_rate=2.5e-4, per_device_train_batch_size=512, num_train_epochs=10,
                      warmup_steps=2000),
    ),
}

METHOD = Method(
    name="clm",
    summary="GPT causal language modelling: predict every next token with a causal decoder (teacher forcing)",
    paper="Radford et al., Language Models are Unsupervised Multitask Learners (GPT-2), OpenAI 2019",
    config_class=CLMConfig,
    model_class=CLMForPreTraining,
    modality="text",
    presets=PRESETS,
    default_preset="small",
    make_collator=make_collator,
    tags=("gpt2", "causal-language-modeling", "text-generation"),
    display_name="CLM (GPT)",
    limitations=(
        "A small model trained on one corpus generates text in that corpus's style and vocabulary only, and "
        "repeats itself under greedy decoding. It reads at most `max_length` tokens of context."
    ),
)

__all__ = ["CLMConfig", "CLMForPreTraining", "CLMOutput", "METHOD"]
