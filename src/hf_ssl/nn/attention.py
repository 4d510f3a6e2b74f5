"""The attention function of hf-ssl's transformer backbones: transformers' SDPA attention, except where PyTorch's
fused CPU kernel is slow.

On a CPU in bf16, PyTorch's flash-attention kernel is 2-3x slower than the unfused product-softmax-product ("math")
for the short sequences of small images, while it is the faster one for long sequences and in fp32. Forward and
backward of one attention call, measured on this project's 2-core CPU (avx512_bf16):

    (batch x heads, tokens, head dim)   fp32 flash / math    bf16 flash / math
    128 x 3, 17, 64  (MAE small, encoder)     6.2 / 9.0 ms        14.7 / 4.6 ms
    128 x 4, 65, 32  (MAE small, decoder)    21.4 / 33.9 ms       58.4 / 26.1 ms
    64 x 12, 197, 64 (ViT-B/16 at 224 px)     300 / 551 ms         347 / 593 ms

So `sdpa_attention` keeps transformers' SDPA everywhere and only picks the math backend for bf16 on a CPU at up to
`SHORT_SEQUENCE` keys: MAE `small`'s training step in bf16 went from 510 to 336 ms (batch 128). Registered with
transformers' `AttentionInterface` (and `AttentionMaskInterface`, with SDPA's masks) under `ATTENTION_NAME`, the
name `build_backbone` gives the token backbones it builds; the name is a runtime setting, not saved in config.json,
so exported checkpoints load with plain transformers' default attention.

This file depends on torch and transformers only.
"""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION_NAME = "hf_ssl_sdpa"
SHORT_SEQUENCE = 128  # keys; the crossover lies between the 65 and 197 measured above


def sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' `sdpa_attention_forward`, on PyTorch's math backend for bf16 on a CPU with short sequences."""
    if query.device.type == "cpu" and query.dtype == torch.bfloat16 and key.shape[-2] <= SHORT_SEQUENCE:
        with sdpa_kernel(SDPBackend.MATH):
            return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def attention_for(config) -> str:
    """The attention implementation of a transformer built from (or beside) a backbone `config`: this module's
    wherever transformers' SDPA would be used (unset or "sdpa"), else what the config names (e.g. "eager")."""
    return ATTENTION_NAME if config._attn_implementation in (None, "sdpa") else config._attn_implementation


AttentionInterface.register(ATTENTION_NAME, sdpa_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)

__all__ = ["ATTENTION_NAME", "SHORT_SEQUENCE", "attention_for", "sdpa_attention"]
