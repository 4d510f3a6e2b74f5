"""Configuration of causal language modelling (GPT).

Radford et al. "Improving Language Understanding by Generative Pre-Training" (2018) and "Language Models are
Unsupervised Multitask Learners" (GPT-2, 2019): a decoder-only transformer whose attention is causal, trained with
teacher forcing to predict every next token, mean cross-entropy over the tokens. Documents are separated by the
end-of-text token and packed into full-length blocks.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..language_model import LanguageModelConfig


@strict
class CLMConfig(LanguageModelConfig):
    r"""
    backbone_config (`PretrainedConfig`): any decoder config with a `*ForCausalLM` class (GPT-2 by default).
        Exported as that native model (`GPT2LMHeadModel`, ...) with its tied output layer.
    """

    model_type = "hf_ssl_clm"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="gpt2")}
    tokenizer_kind = "bpe"
    pipeline_tag = "text-generation"
    causal = True
    head_auto_class = "AutoModelForCausalLM"


__all__ = ["CLMConfig"]
