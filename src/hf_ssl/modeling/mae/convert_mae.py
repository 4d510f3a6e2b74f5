"""Conversion to and from transformers' `ViTMAEForPreTraining` (the port of the reference MAE code).

hf-ssl's MAE and `ViTMAEForPreTraining` hold the same weights under different names, so a model trained
here can be handed to code written for `vit_mae` checkpoints, and the two implementations can be
checked against each other (same weights + same masking noise = same loss).
"""

from __future__ import annotations

from transformers import ViTMAEConfig, ViTMAEForPreTraining

from ..method_model import TRAINING_POSITION
from .modeling_mae import MAEForPreTraining

# hf-ssl parameter prefix -> ViTMAEForPreTraining parameter prefix (longest match first).
_RENAMES = (
    ("backbone.", "vit."),
    ("decoder_position_embeddings", "decoder.decoder_pos_embed"),
    ("mask_token", "decoder.mask_token"),
    ("decoder_", "decoder.decoder_"),
)


def from_vit_mae_state_dict(state: dict) -> dict:
    """A `ViTMAEForPreTraining` state dict under this model's parameter names (the inverse of `to_vit_mae`'s)."""
    renamed = {}
    for name, value in state.items():
        for ours, theirs in _RENAMES:
            if name.startswith(theirs):
                name = ours + name[len(theirs):]
                break
        renamed[name] = value
    return renamed


def to_vit_mae(model: MAEForPreTraining) -> ViTMAEForPreTraining:
    """A `ViTMAEForPreTraining` with exactly this model's weights and hyperparameters."""
    config = model.config
    backbone = config.backbone_config
    vit_mae = ViTMAEForPreTraining(ViTMAEConfig(
        hidden_size=backbone.hidden_size, num_hidden_layers=backbone.num_hidden_layers,
        num_attention_heads=backbone.num_attention_heads, intermediate_size=backbone.intermediate_size,
        hidden_act=backbone.hidden_act, layer_norm_eps=backbone.layer_norm_eps, qkv_bias=backbone.qkv_bias,
        image_size=config.image_size, patch_size=config.patch_size, num_channels=config.num_channels,
        decoder_hidden_size=config.decoder_hidden_size, decoder_num_hidden_layers=config.decoder_num_hidden_layers,
        decoder_num_attention_heads=config.decoder_num_attention_heads,
        decoder_intermediate_size=config.decoder_intermediate_size, mask_ratio=config.mask_ratio,
        norm_pix_loss=config.norm_pix_loss,
    ))
    state = {}
    for name, value in model.state_dict().items():
        if name in TRAINING_POSITION:  # hf-ssl's record of the training position, not a weight of the model
            continue
        for ours, theirs in _RENAMES:
            if name.startswith(ours):
                name = theirs + name[len(ours):]
                break
        state[name] = value
    missing, unexpected = vit_mae.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"weights do not map onto ViTMAEForPreTraining: missing {missing}, unexpected {unexpected}")
    return vit_mae.to(next(model.parameters()).dtype)
