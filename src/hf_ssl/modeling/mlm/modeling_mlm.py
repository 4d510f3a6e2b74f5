"""Masked language modelling (BERT, Devlin et al., NAACL 2019) around a native transformers `*ForMaskedLM`.

The model that is trained is the model that is exported: `self.lm` is a stock `BertForMaskedLM` (or
`RobertaForMaskedLM`, ...) with its output layer tied to the input embeddings, so `pipeline("fill-mask")` uses
exactly the trained head. The loss is `hf_ssl.losses.masked_language_modeling_loss` on the chosen positions; the
vocabulary projection runs on those positions only (about 15% of them), as BERT's `gather_indexes` does. With
`nsp`, BERT's pooler (dense + tanh on [CLS]) and a 2-way classifier add the next-sentence loss; that head stays in
`ssl/`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ...losses.masked_language_modeling import masked_language_modeling_loss
from ..language_model import LanguageModelForPreTraining
from ...nn.token_masking import IGNORE_INDEX

from .configuration_mlm import MLMConfig


@dataclass
class MLMOutput(ModelOutput):
    r"""
    loss: masked-LM loss (mean over the chosen positions), plus the next-sentence loss with `nsp`.
    logits: (N, V) vocabulary scores at the N chosen positions (row-major order of `labels != -100`).
    nsp_logits: (B, 2) IsNext / NotNext scores, with `nsp`.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    nsp_logits: torch.Tensor | None = None


class NextSentenceHead(nn.Module):
    """BERT's pooler (dense + tanh on the [CLS] state) and its 2-way `seq_relationship` classifier."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.classifier = nn.Linear(hidden_size, 2)

    def forward(self, cls_state: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.dense(cls_state)))


class MLMForPreTraining(LanguageModelForPreTraining):
    config_class = MLMConfig
    base_model_prefix = "mlm"

    def __init__(self, config: MLMConfig):
        super().__init__(config)
        self.nsp_head = NextSentenceHead(config.backbone_config.hidden_size) if config.nsp else None
        self.post_init()

    def _init_weights(self, module):
        if module is self.nsp_head:  # BERT's init: normal(0, initializer_range), zero bias
            std = getattr(self.config.backbone_config, "initializer_range", 0.02)
            for linear in (module.dense, module.classifier):
                nn.init.normal_(linear.weight, std=std)
                nn.init.zeros_(linear.bias)

    def _prediction_head(self) -> nn.Module | None:
        """The native model's MLM head (`cls` of BERT, `lm_head` of RoBERTa): its one child besides the encoder.
        None for architectures that split it into several modules; those score every position."""
        heads = [module for name, module in self.lm.named_children() if name != self.lm.base_model_prefix]
        return heads[0] if len(heads) == 1 else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                next_sentence_label: torch.Tensor | None = None, **kwargs) -> MLMOutput:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        head = self._prediction_head()
        hidden = self.lm.base_model(**inputs).last_hidden_state
        if labels is None:
            logits = head(hidden) if head is not None else self.lm(**inputs).logits
            return MLMOutput(logits=logits)
        chosen = labels != IGNORE_INDEX
        if head is not None:
            logits = head(hidden[chosen])
        else:
            logits = self.lm(**inputs).logits[chosen]
        loss = masked_language_modeling_loss(logits, labels[chosen])
        terms = {"mlm_loss": loss.detach()}
        nsp_logits = None
        if self.nsp_head is not None:
            if next_sentence_label is None:
                raise ValueError("nsp=True needs next_sentence_label (sentence-pair inputs)")
            nsp_logits = self.nsp_head(hidden[:, 0])
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label)
            loss = loss + nsp_loss
            terms.update(nsp_loss=nsp_loss.detach(),
                         nsp_accuracy=(nsp_logits.argmax(-1) == next_sentence_label).float().mean())
        self.last_loss_terms = terms
        return MLMOutput(loss=loss, logits=logits, nsp_logits=nsp_logits)


__all__ = ["MLMForPreTraining", "MLMOutput", "NextSentenceHead"]
