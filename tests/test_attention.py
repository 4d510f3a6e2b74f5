"""The attention of hf-ssl's transformer backbones (`nn.attention`) and the precision a run picks by default."""

import json

import pytest
import torch

from hf_ssl.nn import attention
from hf_ssl.nn.attention import ATTENTION_NAME, SHORT_SEQUENCE, sdpa_attention
from hf_ssl.nn.backbone import build_backbone
from hf_ssl.training.pretrain import bf16_by_default

from conftest import tiny_backbone_config

CPU_HAS_BF16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class _Attention(torch.nn.Module):  # what transformers' attention functions read from the calling module
    is_causal = False
    num_key_value_groups = 1


@pytest.mark.parametrize("dtype, tokens, computed_in", [
    (torch.bfloat16, 17, torch.float32),  # MAE small's encoder: fp32's fused kernel
    (torch.bfloat16, SHORT_SEQUENCE, torch.float32),
    (torch.bfloat16, SHORT_SEQUENCE + 1, torch.bfloat16),  # long sequences keep bf16
    (torch.float32, 17, torch.float32),
])
def test_bf16_attention_runs_in_fp32_only_for_short_sequences(monkeypatch, dtype, tokens, computed_in):
    seen = []

    def recording_sdpa(module, query, key, value, attention_mask, **kwargs):
        seen.append((query.dtype, key.dtype, value.dtype, attention_mask.dtype, torch.is_autocast_enabled("cpu")))
        return torch.nn.functional.scaled_dot_product_attention(query, key, value, attention_mask).transpose(1, 2), None

    monkeypatch.setattr(attention, "sdpa_attention_forward", recording_sdpa)
    query, key, value = (torch.randn(2, 3, tokens, 8, dtype=dtype) for _ in range(3))
    additive_mask = torch.zeros(2, 1, tokens, tokens, dtype=dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = sdpa_attention(_Attention(), query, key, value, additive_mask)
    assert seen == [(computed_in,) * 4 + (computed_in == dtype,)]  # autocast is off only around the fp32 copies
    if dtype == torch.bfloat16:
        assert output.dtype == torch.bfloat16  # cast back: the next layer gets what it would have


def test_bf16_attention_in_fp32_matches_a_float64_computation():
    query, key, value = (torch.randn(4, 3, 17, 16, dtype=torch.bfloat16) for _ in range(3))
    output, _ = sdpa_attention(_Attention(), query, key, value, None)
    reference = torch.softmax(query.double() @ key.double().transpose(-1, -2) / 4, -1) @ value.double()
    # within bf16's rounding of the output (8 bits of mantissa), where a bf16 softmax would add its own error
    assert torch.allclose(output.double(), reference.transpose(1, 2), atol=1e-2, rtol=8e-3)
    bf16_math = torch.softmax(query @ key.transpose(-1, -2) / 4, -1) @ value
    error = (output.double() - reference.transpose(1, 2)).abs().mean()
    assert error < (bf16_math.double() - reference).abs().mean()


def test_token_backbones_are_built_with_it_and_match_plain_sdpa():
    config = tiny_backbone_config("vit-test", 16)
    backbone = build_backbone(config)
    assert backbone.config._attn_implementation == ATTENTION_NAME
    from transformers import AutoModel

    plain = AutoModel.from_config(config, attn_implementation="sdpa", add_pooling_layer=False)
    plain.load_state_dict(backbone.state_dict())
    pixels = torch.randn(2, 3, 16, 16)
    assert torch.equal(backbone(pixel_values=pixels).last_hidden_state, plain(pixel_values=pixels).last_hidden_state)


def test_bf16_by_default_on_this_cpu_for_transformer_backbones_and_presets_measured_faster():
    if torch.cuda.is_available():
        pytest.skip("a GPU decides by its own bf16 support")
    from hf_ssl.registry import get_method
    from hf_ssl.training.pretrain import PretrainArguments, build_config

    def default(method, preset):
        config = build_config(get_method(method), PretrainArguments(method=method, preset=preset), {})[0]
        return bf16_by_default(config, get_method(method).presets[preset])

    assert default("mae", "tiny") == CPU_HAS_BF16  # a ViT: the backbone's rule
    assert not default("simclr", "tiny")  # a ResNet, nothing measured for the preset
    assert default("simclr", "small") == CPU_HAS_BF16  # measured faster: 32 px images
    assert not default("jigsaw", "small")  # measured slower: 8 px tiles
    assert not default("word2vec", "small")  # no backbone


def test_a_run_records_its_default_precision_and_exports_no_attention_name(pretrained_out):
    out, _ = pretrained_out  # `hf-ssl pretrain --method mae --preset tiny`, without --bf16
    info = json.loads((out / "ssl" / "training_info.json").read_text())
    assert (", bf16" in info["hardware"]) == (CPU_HAS_BF16 and not torch.cuda.is_available())
    assert ATTENTION_NAME not in (out / "config.json").read_text()  # a runtime choice, not the checkpoint's
