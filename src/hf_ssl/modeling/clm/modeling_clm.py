"""Causal language modelling (GPT) around a native transformers `*ForCausalLM` (`GPT2LMHeadModel` by default).

`self.lm` is the exported model; its own causal attention mask makes position t see tokens 1..t only. The loss is
`hf_ssl.losses.causal_language_modeling_loss`: next-token cross-entropy, averaged over every predicted token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ...losses.causal_language_modeling import causal_language_modeling_loss
from ..language_model import LanguageModelForPreTraining

from .configuration_clm import CLMConfig


@dataclass
class CLMOutput(ModelOutput):
    r"""
    loss: mean next-token cross-entropy.
    logits: (B, L, V), position t scoring token t+1.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class CLMForPreTraining(LanguageModelForPreTraining):
    config_class = CLMConfig
    base_model_prefix = "clm"

    def __init__(self, config: CLMConfig):
        super().__init__(config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, return_loss: bool = True,
                **kwargs) -> CLMOutput:
        logits = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits
        loss = causal_language_modeling_loss(logits, input_ids, attention_mask) if return_loss else None
        return CLMOutput(loss=loss, logits=logits)


__all__ = ["CLMForPreTraining", "CLMOutput"]
