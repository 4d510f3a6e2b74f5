"""Any transformers vision model as the encoder of an SSL method.

An SSL method wraps a *stock* transformers backbone (ViT, ResNet, ConvNeXt, ...): it is built from a
config (what ``--backbone`` names is resolved to one by :mod:`.backbone_presets`), may start from a
checkpoint's weights, yields one pooled feature vector per image for evaluation, and is exported as itself
(``save_pretrained``) so that plain transformers loads it. Nothing here knows about any SSL method.
"""

from __future__ import annotations

import functools
import inspect
import math
import os

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel

from ..errors import HfSslError, first_line
from .attention import attention_for
from .backbone_presets import require_safetensors

# Token-sequence backbones (a leading [CLS] token, no pooled output of ours).
_NO_POOLER_MODEL_TYPES = {"vit", "deit", "beit", "data2vec-vision", "dinov2"}
# Those built with `add_pooling_layer=False`: the exported checkpoint then has exactly the weights
# `AutoModelForImageClassification` reuses (it builds these without a pooler too). DINOv2 has no such argument (and
# no pooler weights).
_OPTIONAL_POOLER_MODEL_TYPES = _NO_POOLER_MODEL_TYPES - {"dinov2"}


def build_backbone(config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised backbone in its native transformers class (``AutoModel``)."""
    return AutoModel.from_config(config, **_model_kwargs(config))


def load_backbone_weights(backbone: PreTrainedModel, checkpoint: str) -> None:
    """Copy a checkpoint's weights (safetensors only) into ``backbone``; every backbone weight must be found."""
    if os.path.isdir(checkpoint):
        require_safetensors(checkpoint)
    try:
        source_config = AutoConfig.from_pretrained(checkpoint)
        pretrained = AutoModel.from_pretrained(checkpoint, use_safetensors=True, **_model_kwargs(source_config))
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load backbone weights from {checkpoint}: {first_line(e)}") from None
    source = pretrained.state_dict()
    missing = [k for k in backbone.state_dict() if k not in source]
    if missing:
        raise HfSslError(
            f"checkpoint {checkpoint} does not match the backbone: missing {', '.join(missing[:3])}"
            + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        )
    try:
        backbone.load_state_dict({k: source[k] for k in backbone.state_dict()}, strict=True)
    except RuntimeError as e:  # shapes differ, e.g. another --image_size than the checkpoint's
        raise HfSslError(f"checkpoint {checkpoint} does not fit the backbone: {first_line(e)}") from None


def load_encoder(folder: str | os.PathLike):
    """An exported encoder folder -> (native backbone, its image processor), as plain transformers loads them."""
    from transformers import AutoImageProcessor

    folder = str(folder)
    if os.path.isdir(folder):
        require_safetensors(folder)
    try:
        config = AutoConfig.from_pretrained(folder)
        encoder = AutoModel.from_pretrained(folder, use_safetensors=True, **_model_kwargs(config))
        processor = AutoImageProcessor.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load an encoder from {folder}: {first_line(e)}") from None
    return encoder, processor


def is_token_backbone(config: PretrainedConfig) -> bool:
    """True for transformer backbones whose output is a token sequence with a leading [CLS] token."""
    return config.model_type in _NO_POOLER_MODEL_TYPES


def feature_dim(config: PretrainedConfig) -> int:
    """Width of :func:`pooled_features` for a backbone config."""
    if getattr(config, "hidden_sizes", None):
        return int(config.hidden_sizes[-1])
    return int(config.hidden_size)


def pooled_features(backbone: PreTrainedModel, pixel_values: torch.Tensor, pooling: str = "auto") -> torch.Tensor:
    """One feature vector per image, shape (batch, :func:`feature_dim`).

    Token backbones with a leading [CLS] token (ViT, DeiT, BEiT): ``"cls"`` takes the [CLS] token, ``"mean"``
    averages the patch tokens (``"auto"`` = ``"mean"``: for masked-image-modelling encoders the [CLS] token
    receives no direct training signal and patch averaging is the stronger frozen feature). Convolutional and hierarchical
    backbones (ResNet, ConvNeXt, Swin): their own global pooling (``pooler_output``), whatever ``pooling`` says.

    Inputs of another size than the config's ``image_size`` (multi-crop's local crops, evaluation at another
    resolution) work: backbones with position embeddings are called with ``interpolate_pos_encoding=True``.
    """
    kwargs = {}
    size = getattr(backbone.config, "image_size", None)
    if size is not None and tuple(pixel_values.shape[-2:]) != _pair(size) and _interpolates(backbone):
        kwargs["interpolate_pos_encoding"] = True
    outputs = backbone(pixel_values=pixel_values, **kwargs)
    hidden = outputs.last_hidden_state
    if pooling not in ("auto", "cls", "mean"):
        raise HfSslError(f"unknown pooling '{pooling}' (choose auto, cls or mean)")
    if hidden.dim() == 3 and is_token_backbone(backbone.config):
        if pooling == "cls":
            return hidden[:, 0]
        if pooling in ("mean", "auto"):
            return hidden[:, 1:].mean(dim=1)
    # convolutional and hierarchical backbones (ResNet, ConvNeXt, Swin: no [CLS] token): their own global pooling
    if getattr(outputs, "pooler_output", None) is not None:
        return outputs.pooler_output.flatten(1)
    return hidden.mean(dim=1) if hidden.dim() == 3 else hidden.mean(dim=(2, 3))


def feature_map(backbone: PreTrainedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """The backbone's last spatial features, (batch, :func:`feature_dim`, h, w), for dense prediction heads.

    Convolutional and hierarchical backbones (ResNet, ConvNeXt): their last hidden state map. Token backbones (ViT):
    the patch tokens ([CLS] dropped) laid back on their grid; token sequences without a [CLS] token (Swin): all
    tokens, on a grid of the input's aspect ratio.
    """
    kwargs = {}
    size = getattr(backbone.config, "image_size", None)
    if size is not None and tuple(pixel_values.shape[-2:]) != _pair(size) and _interpolates(backbone):
        kwargs["interpolate_pos_encoding"] = True
    hidden = backbone(pixel_values=pixel_values, **kwargs).last_hidden_state
    if hidden.dim() == 4:
        return hidden
    if is_token_backbone(backbone.config):
        hidden = hidden[:, 1:]
    height, width = pixel_values.shape[-2:]
    rows = max(1, round(math.sqrt(hidden.shape[1] * height / width)))
    if hidden.shape[1] % rows:
        raise HfSslError(f"cannot lay {hidden.shape[1]} tokens of a {height}x{width} input on a grid")
    return hidden.transpose(1, 2).unflatten(2, (rows, hidden.shape[1] // rows))


def _pair(size) -> tuple[int, int]:
    return (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))


@functools.lru_cache(maxsize=None)
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def _interpolates(backbone: nn.Module) -> bool:
    return "interpolate_pos_encoding" in _forward_parameters(type(backbone))


def _model_kwargs(config: PretrainedConfig) -> dict:
    kwargs = {"add_pooling_layer": False} if config.model_type in _OPTIONAL_POOLER_MODEL_TYPES else {}
    if is_token_backbone(config):
        # SDPA, on its math backend where the fused CPU kernel is slow (bf16, short sequences): `nn.attention`
        kwargs["attn_implementation"] = attention_for(config)
    return kwargs
