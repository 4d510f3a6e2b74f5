"""What the language-modelling methods (mlm, clm) share: the config fields of their tokenizer and input length, and a
model that wraps a *native* transformers language model (``BertForMaskedLM``, ``GPT2LMHeadModel``, ...), which is
what gets exported. A method's own folder adds only its objective."""

from __future__ import annotations

import os

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

from ..errors import HfSslError, first_line
from .method_model import MethodModel


@strict
class LanguageModelConfig(PretrainedConfig):
    r"""
    backbone_config (`PretrainedConfig`): the language model, any transformers text config whose architecture has
        the method's head class (`*ForMaskedLM` / `*ForCausalLM`); exported as that native class. Its `vocab_size`
        and special token ids are set from the tokenizer before the model is built.
    max_length (`int`): tokens per training block (at most the backbone's `max_position_embeddings`).
    tokenizer_vocab_size (`int`): vocabulary of the tokenizer trained on the corpus when none is given
        (`--tokenizer`, or a checkpoint's own with `--backbone`).
    """

    # Class attributes (not hyperparameters, never saved): set by each method.
    tokenizer_kind = ""  # "wordpiece" (BERT's special tokens) or "bpe" (byte-level, GPT-2's end-of-text token)
    pipeline_tag = ""  # the transformers pipeline the export serves
    causal = False  # True: next-token prediction (blocks end documents with end-of-text; perplexity evaluation)
    head_auto_class = ""  # the transformers Auto class of the exported model, e.g. "AutoModelForMaskedLM"

    backbone_config: dict | PretrainedConfig | None = None
    max_length: int = 128
    tokenizer_vocab_size: int = 30522

    def validate_language_model(self):
        """Run by `@strict` on creation."""
        if self.max_length < 4:
            raise ValueError(f"max_length must be at least 4 tokens, got {self.max_length}")
        positions = max_positions(self.backbone_config)
        if positions is not None and self.max_length > positions:
            raise ValueError(f"max_length {self.max_length} exceeds the backbone's {positions} positions "
                             "(max_position_embeddings)")
        if self.tokenizer_vocab_size < 100:
            raise ValueError(f"tokenizer_vocab_size must be at least 100, got {self.tokenizer_vocab_size}")


def max_positions(config: PretrainedConfig | None) -> int | None:
    """The longest input a text config's position embeddings allow (BERT's or GPT-2's field name), None if unknown."""
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def head_auto_class(name: str):
    import transformers

    return getattr(transformers, name)


class LanguageModelForPreTraining(MethodModel):
    """Base of the language-modelling methods: `self.lm` is the native model that is exported."""

    main_input_name = "input_ids"
    input_modalities = ("text",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: LanguageModelConfig):
        super().__init__(config)
        auto_class = head_auto_class(config.head_auto_class)
        try:
            self.lm = auto_class.from_config(config.backbone_config)
        except ValueError as e:  # the architecture has no such head (a GPT-2 config for a masked LM, ...)
            raise HfSslError(f"a {config.backbone_config.model_type} backbone has no {config.head_auto_class} "
                             f"class: {first_line(e)}") from None

    def _init_weights(self, module):
        # every weight of the native model is initialised by the native model; method heads initialise their own
        pass

    def get_encoder(self):
        return self.lm

    def exported_model(self):
        """The native language model (with its head): `pipeline(config.pipeline_tag, model=OUT)` serves it."""
        return self.lm

    def load_encoder_weights(self, checkpoint: str) -> None:
        """Continued pretraining (`--backbone PATH_OR_HUB_ID`): the native head class loads the checkpoint, so a
        bare encoder (``BertModel``, e.g. a sentence-transformers MiniLM) gets its encoder weights and a new head,
        and a checkpoint with the head (an earlier export) gets both. Safetensors only."""
        auto_class = head_auto_class(self.config.head_auto_class)
        if os.path.isdir(checkpoint) and not any(f.endswith(".safetensors") for f in os.listdir(checkpoint)):
            raise HfSslError(f"checkpoint {checkpoint} has no safetensors weights; hf-ssl reads safetensors only")
        try:
            pretrained = auto_class.from_pretrained(checkpoint, use_safetensors=True)
        except (OSError, ValueError) as e:
            raise HfSslError(f"cannot load {checkpoint} as a {self.config.head_auto_class}: {first_line(e)}") from None
        try:
            self.lm.load_state_dict(pretrained.state_dict(), strict=True)
        except RuntimeError as e:  # the tokenizer grew the vocabulary, or another architecture
            raise HfSslError(f"checkpoint {checkpoint} does not fit the model: {first_line(e)}") from None
