"""The attention of hf-ssl's transformer backbones: transformers' SDPA attention, except in bf16 on a CPU, where
PyTorch's fused kernel is faster in fp32.

On a CPU in bf16, PyTorch's flash-attention kernel is 2-4x slower than the same kernel in fp32 for the short
sequences of small images, and slower than the unfused product-softmax-product ("math") as well; fp32's fused kernel
stays the faster one up to several hundred tokens. Forward and backward of one attention call, in milliseconds:

    (batch, heads, tokens, head dim)       fp32 flash / math    bf16 flash / math
    Intel Xeon with AMX, 2 cores (this project's machine from 7 December 2026):
    128, 3, 17, 64  (MAE small, encoder)      5.4 / 7.6           23.5 / 6.3
    128, 4, 65, 32  (MAE small, decoder)     17.8 / 30.4          66.2 / 24.8
    32, 12, 197, 64 (ViT-B/16 at 224 px)    116.7 / 256.2        130.1 / 249.7
    8, 6, 577, 64   (ViT at 384 px)          78.4 / 205.4         87.7 / 218.4
    2, 8, 1024, 64                           71.3 / 206.8         53.0 / 223.1
    AMD EPYC with avx512_bf16, 2 cores (before):
    128, 3, 17, 64                            6.2 / 9.0           14.7 / 4.6
    128, 4, 65, 32                           21.4 / 33.9          58.4 / 26.1
    64, 12, 197, 64                           300 / 551            347 / 593

So `sdpa_attention` keeps transformers' SDPA everywhere and, for bf16 on a CPU with up to `SHORT_SEQUENCE` keys,
runs it on fp32 copies of the query, key and value (autocast off) and casts the output back: MAE `small`'s training
step in bf16 went from 318 to 286 ms on the Xeon (batch 128; on the EPYC the math backend had taken it from 510 to
336 ms, and fp32's kernel would cost about as much there: slower in the encoder, faster in the decoder). The fp32
softmax is also the more precise one. Registered with
transformers' `AttentionInterface` (and `AttentionMaskInterface`, with SDPA's masks) under `ATTENTION_NAME`, the
name `build_backbone` gives the token backbones it builds; the name is a runtime setting, not saved in config.json,
so exported checkpoints load with plain transformers' default attention.

This file depends on torch and transformers only.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTENTION_NAME = "hf_ssl_sdpa"
SHORT_SEQUENCE = 577  # keys: the longest sequence measured above where fp32 is faster (not at 1024)


def sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' `sdpa_attention_forward`, in fp32 for bf16 on a CPU with short sequences (see the module)."""
    if query.device.type == "cpu" and query.dtype == torch.bfloat16 and key.shape[-2] <= SHORT_SEQUENCE:
        if attention_mask is not None and attention_mask.is_floating_point():
            attention_mask = attention_mask.float()  # an additive mask has the query's dtype
        with torch.autocast("cpu", enabled=False):  # autocast would run SDPA in bf16 again
            output, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(),
                                                     attention_mask, **kwargs)
        return output.to(query.dtype), weights
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def attention_for(config) -> str:
    """The attention implementation of a transformer built from (or beside) a backbone `config`: this module's
    wherever transformers' SDPA would be used (unset or "sdpa"), else what the config names (e.g. "eager")."""
    return ATTENTION_NAME if config._attn_implementation in (None, "sdpa") else config._attn_implementation


AttentionInterface.register(ATTENTION_NAME, sdpa_attention)
AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)

__all__ = ["ATTENTION_NAME", "SHORT_SEQUENCE", "attention_for", "sdpa_attention"]
