"""What ``--backbone`` can name, resolved to a transformers config: a preset, a config JSON, or a checkpoint.

The presets are named architectures of every kind of backbone the methods use: vision models (ViT, ResNet,
ConvNeXt), image-text pairs of towers (CLIP) and text models (BERT, GPT-2). They are kept apart from
:mod:`.backbone`, which is about using a *vision* backbone (building it, loading its weights, pooling its
features), because the language-model and CLIP configs resolve their ``--backbone`` here too. The module lives in
``nn/`` and imports only the standard library, transformers and ``..errors``, because modeling code (CLIP's config
and model) imports it, and modeling code is what an exported folder carries for ``trust_remote_code`` users.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from ..errors import HfSslError, first_line

__all__ = ["BACKBONE_PRESETS", "backbone_config_from_spec", "is_checkpoint_spec", "require_safetensors"]

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
    # ResNet-18 at half width (32-64-128-256 channels, 256 features): about a quarter of the FLOPs and 2.7x the
    # training images/s of "resnet18" at 32 px on a 2-core CPU, so a CPU budget buys 2.7x the epochs
    "resnet18-half": dict(model_type="resnet", embedding_size=32, hidden_sizes=[32, 64, 128, 256],
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
        require_safetensors(spec)
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


def is_checkpoint_spec(spec: str) -> bool:
    """True when a `--backbone` value names weights to start from rather than an architecture."""
    return spec not in BACKBONE_PRESETS and not spec.endswith(".json")


def require_safetensors(folder: str) -> None:
    """Refuse (:class:`HfSslError`) a checkpoint folder whose weights are pickles only (hf-ssl reads safetensors
    only) or that has neither safetensors weights nor a ``config.json``."""
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
