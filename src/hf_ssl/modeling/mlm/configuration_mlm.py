"""Configuration of masked language modelling (BERT).

Devlin et al. "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", NAACL 2019
(arXiv:1810.04805). 15% of the token positions are chosen for prediction; a chosen token is replaced by [MASK]
80% of the time, by a random token 10% of the time, and kept 10% of the time (Sec. 3.1, "Task #1: Masked LM");
cross-entropy on the chosen positions only. Next-sentence prediction (Sec. 3.1, "Task #2") adds a binary
classification of [CLS] A [SEP] B [SEP] pairs, B the true next segment 50% of the time. Whole-word masking is the
BERT repository's later variant (all pieces of a word are chosen together).
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..language_model import LanguageModelConfig

MAX_MLM_PROBABILITY = 0.5  # the notes: "typically between 15% and 50% of tokens"


@strict
class MLMConfig(LanguageModelConfig):
    r"""
    backbone_config (`PretrainedConfig`): any encoder config with a `*ForMaskedLM` class (BERT by default; RoBERTa,
        ELECTRA, ... through `--backbone`). Exported as that native masked-LM model with its tied output layer.
    mlm_probability (`float`, defaults to 0.15): share of the (non-special) tokens chosen for prediction, in
        (0, 0.5].
    mask_replace_prob (`float`, defaults to 0.8): share of the chosen tokens replaced by [MASK].
    random_replace_prob (`float`, defaults to 0.1): share of the chosen tokens replaced by a random token; the
        rest (10%) stay unchanged.
    whole_word_mask (`bool`, defaults to `False`): choose whole words (all their WordPiece pieces) at a time.
    nsp (`bool`, defaults to `False`): add next-sentence prediction on [CLS] (sentence-pair inputs with segment
        ids, 50% true next segment); its head (BERT's pooler + a 2-way classifier) is not exported.
    mask_token_id (`int`, *optional*): the tokenizer's [MASK] id, set from the tokenizer.
    """

    model_type = "hf_ssl_mlm"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}
    tokenizer_kind = "wordpiece"
    pipeline_tag = "fill-mask"
    head_auto_class = "AutoModelForMaskedLM"

    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    whole_word_mask: bool = False
    nsp: bool = False
    mask_token_id: int | None = None

    def validate_mlm(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if not 0.0 < self.mlm_probability <= MAX_MLM_PROBABILITY:
            raise ValueError(f"mlm_probability must be in (0, {MAX_MLM_PROBABILITY}], got {self.mlm_probability}")
        for name in ("mask_replace_prob", "random_replace_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_replace_prob + self.random_replace_prob > 1.0:
            raise ValueError(f"mask_replace_prob + random_replace_prob must be <= 1, got "
                             f"{self.mask_replace_prob} + {self.random_replace_prob}")


__all__ = ["MLMConfig"]
