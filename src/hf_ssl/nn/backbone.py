"""Any transformers vision model as the encoder of an SSL method.

An SSL method wraps a *stock* transformers backbone (ViT, ResNet, ConvNeXt, ...): it is built from a
config, a preset name or a checkpoint, it yields one pooled feature vector per image for evaluation,
and it is exported as itself (``save_pretrained``) so that plain transformers loads it. Nothing here
knows about any SSL method.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..errors import HfSslError, first_line

# Named architectures: `--backbone NAME`. "*-test" ones are the tiny configs of the test suite.
# ViTs follow DeiT/ViT naming (Ti 192, S 384, B 768, L 1024 wide); patch and image size are set by
# the method's preset because they depend on the data (32 px Fashion-MNIST vs 224 px ImageNet).
BACKBONE_PRESETS: dict[str, dict] = {
    "vit-test": dict(model_type="vit", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, image_size=16, patch_size=4),
    "vit-tiny": dict(model_type="vit", hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                     intermediate_size=768),
    "vit-small": dict(model_type="vit", hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                      intermediate_size=1536),
    "vit-base": dict(model_type="vit", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072),
    "vit-large": dict(model_type="vit", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                      intermediate_size=4096),
    "resnet-test": dict(model_type="resnet", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                        layer_type="basic"),
    "resnet18": dict(model_type="resnet", embedding_size=64, hidden_sizes=[64, 128, 256, 512],
                     depths=[2, 2, 2, 2], layer_type="basic"),
    "resnet50": dict(model_type="resnet", embedding_size=64, hidden_sizes=[256, 512, 1024, 2048],
                     depths=[3, 4, 6, 3], layer_type="bottleneck"),
    "convnext-test": dict(model_type="convnext", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    "convnext-tiny": dict(model_type="convnext", hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3]),
    # Image-text pairs of towers (CLIP). The text vocabulary is set from the tokenizer at training time.
    "clip-test": dict(model_type="clip", projection_dim=16,
                      vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, image_size=16, patch_size=4),
                      text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=77)),
    "clip-small": dict(model_type="clip", projection_dim=128,
                       vision_config=dict(hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
                                          intermediate_size=768, image_size=32, patch_size=4),
                       text_config=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                                        intermediate_size=512, max_position_embeddings=77)),
    # the paper's ViT-B/16 image tower and 63M-parameter text transformer (512 wide, 12 layers, 77 tokens)
    "clip-vit-b16": dict(model_type="clip", projection_dim=512,
                         vision_config=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                            intermediate_size=3072, image_size=224, patch_size=16),
                         text_config=dict(hidden_size=512, num_hidden_layers=12, num_attention_heads=8,
                                          intermediate_size=2048, max_position_embeddings=77)),
    # Text models (mlm, clm). The vocabulary and special token ids are set from the tokenizer at training time.
    # "mini" is Turc et al. 2019's BERT-Mini size (4 layers, 256 wide); "base" is BERT-base / GPT-2 small.
    "bert-test": dict(model_type="bert", hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=128, max_position_embeddings=128),
    "bert-mini": dict(model_type="bert", hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                      intermediate_size=1024, max_position_embeddings=512),
    "bert-base": dict(model_type="bert", hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, max_position_embeddings=512),
    "gpt2-test": dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=2, n_positions=128),
    "gpt2-mini": dict(model_type="gpt2", n_embd=256, n_layer=4, n_head=4, n_positions=512),
    "gpt2-base": dict(model_type="gpt2", n_embd=768, n_layer=12, n_head=12, n_positions=1024),
}

# Token-sequence backbones whose pooler we drop: the exported checkpoint then has exactly the
# weights `AutoModelForImageClassification` reuses (it builds these without a pooler too).
_NO_POOLER_MODEL_TYPES = {"vit", "deit", "beit", "data2vec-vision", "dinov2"}


def backbone_config_from_spec(spec: str | os.PathLike, **overrides) -> tuple[PretrainedConfig, str | None]:
    """Resolve ``--backbone``: a preset name, a config JSON file, or a checkpoint folder / Hub id.

    Returns the config (with ``overrides`` applied) and, for a checkpoint, where its weights are.
    """
    spec = str(spec)
    if spec in BACKBONE_PRESETS:
        kwargs = dict(BACKBONE_PRESETS[spec])
        model_type = kwargs.pop("model_type")
        return CONFIG_MAPPING[model_type](**{**kwargs, **overrides}), None
    if spec.endswith(".json"):
        if not os.path.isfile(spec):
            raise HfSslError(f"backbone config file {spec} does not exist")
        try:
            with open(spec, encoding="utf-8") as f:
                config_dict = json.load(f)
            model_type = config_dict.pop("model_type")
            return CONFIG_MAPPING[model_type](**{**config_dict, **overrides}), None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise HfSslError(f"backbone config {spec} is not a transformers config: {first_line(e)}") from None
    if os.path.isdir(spec):
        _require_safetensors(spec)
    elif spec.startswith((".", os.path.sep)):  # a local path (Hub ids never start so) that is not there
        raise HfSslError(f"backbone checkpoint {spec} does not exist")
    try:
        config = AutoConfig.from_pretrained(spec, **overrides)
    except (OSError, ValueError, KeyError) as e:
        names = ", ".join(BACKBONE_PRESETS)
        raise HfSslError(
            f"unknown backbone '{spec}' (not a preset [{names}], a config .json, a checkpoint folder or a "
            f"reachable Hub id): {first_line(e)}"
        ) from None
    return config, spec


def build_backbone(config: PretrainedConfig) -> PreTrainedModel:
    """A randomly initialised backbone in its native transformers class (``AutoModel``)."""
    return AutoModel.from_config(config, **_model_kwargs(config))


def load_backbone_weights(backbone: PreTrainedModel, checkpoint: str) -> None:
    """Copy a checkpoint's weights (safetensors only) into ``backbone``; every backbone weight must be found."""
    if os.path.isdir(checkpoint):
        _require_safetensors(checkpoint)
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
        _require_safetensors(folder)
    try:
        config = AutoConfig.from_pretrained(folder)
        encoder = AutoModel.from_pretrained(folder, use_safetensors=True, **_model_kwargs(config))
        processor = AutoImageProcessor.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load an encoder from {folder}: {first_line(e)}") from None
    return encoder, processor


def is_checkpoint_spec(spec: str) -> bool:
    """True when a `--backbone` value names weights to start from rather than an architecture."""
    return spec not in BACKBONE_PRESETS and not spec.endswith(".json")


def describe_backbone(backbone: PreTrainedModel) -> str:
    """A short human description for model cards, e.g. "ViT (192 wide, 6 layers, patch 4, 2.7M parameters)"."""
    config = backbone.config
    parts = []
    if getattr(config, "hidden_sizes", None):
        parts.append("widths " + "-".join(str(w) for w in config.hidden_sizes))
    elif getattr(config, "hidden_size", None):
        parts.append(f"{config.hidden_size} wide")
    if getattr(config, "num_hidden_layers", None):
        parts.append(f"{config.num_hidden_layers} layers")
    elif getattr(config, "depths", None):
        parts.append("depths " + "-".join(str(d) for d in config.depths))
    if getattr(config, "patch_size", None):
        parts.append(f"patch {config.patch_size}")
    count = sum(p.numel() for p in backbone.parameters())
    parts.append(f"{count / 1e6:.1f}M parameters" if count >= 1e6 else f"{count / 1e3:.0f}K parameters")
    return f"{type(backbone).__name__.removesuffix('Model')} ({', '.join(parts)})"


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
    return {"add_pooling_layer": False} if config.model_type in _NO_POOLER_MODEL_TYPES else {}


def _require_safetensors(folder: str) -> None:
    files = os.listdir(folder)
    if any(f.endswith(".safetensors") for f in files):
        return
    if any(f.endswith((".bin", ".pt", ".pth", ".ckpt")) for f in files):
        raise HfSslError(
            f"checkpoint {folder} has only pickle weights (.bin/.pt); hf-ssl reads safetensors only: convert it "
            "with `model.save_pretrained(dir)` in a trusted environment"
        )
    if not (Path(folder) / "config.json").is_file():
        raise HfSslError(f"{folder} is not a checkpoint folder (no config.json)")

