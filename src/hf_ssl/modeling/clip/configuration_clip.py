"""Configuration of CLIP pretraining.

Radford et al. "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021
(arXiv:2103.00020). An image encoder and a text encoder, linear projections into a joint space, L2
normalisation, cosine similarities scaled by a learned temperature, and the symmetric cross-entropy over the
batch (Fig. 3). The defaults are the paper's: temperature initialised to 0.07 and the logit scale clipped at 100
(Sec. 2.5), the ViT-B/16 image tower and the 12-layer, 512-wide text transformer with a 49,408-token BPE
vocabulary and 77 positions.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PretrainedConfig, VisionTextDualEncoderConfig
from transformers.configuration_utils import SubConfigSpec

from ..image_method import ImageMethodConfig
from ...nn.backbone_presets import backbone_config_from_spec, is_checkpoint_spec

# Vision models whose pooled output is a feature map, not a vector: `VisionTextDualEncoderModel` projects
# `pooler_output` with a Linear layer, which needs (batch, width).
_SPATIAL_POOLER_MODEL_TYPES = {"resnet", "regnet", "bit", "van"}
# CLIP's byte-level BPE starts from every byte inside a word and word-final (`</w>`), plus its two special tokens
MIN_BPE_VOCAB_SIZE = 2 * 256 + 2


@strict
class CLIPPretrainingConfig(ImageMethodConfig):
    r"""
    backbone_config (`CLIPConfig` or `VisionTextDualEncoderConfig`): the two towers, their projections and the
        learned temperature (`logit_scale_init_value`, log(1 / 0.07) as in the paper); exported as the native
        `CLIPModel` (or `VisionTextDualEncoderModel` when other towers are chosen). Its vision config holds the
        image geometry.
    vision_backbone (`str`, *optional*): another image tower: a backbone preset, config .json, or a checkpoint
        folder / Hub id whose weights it starts from. Turns the model into a `VisionTextDualEncoderModel`.
    text_backbone (`str`, *optional*): another text tower, e.g. a pretrained sentence encoder (its tokenizer is
        then used). Turns the model into a `VisionTextDualEncoderModel`.
    tokenizer_vocab_size (`int`, defaults to 49408): vocabulary of the byte-level BPE tokenizer trained on the
        captions when no tokenizer is given (the paper's: 49,152 merges plus byte and special tokens); a small
        caption corpus yields fewer tokens.
    max_logit_scale (`float`, defaults to 100): the clip of exp(t), "to prevent scaling the logits by more than
        100, which we found necessary to prevent training instability" (Sec. 2.5).
    gather_distributed (`bool`, defaults to `True`): contrast every image with the captions of all processes and
        every caption with all images, gathered with gradient (the paper's 32,768-pair global batch); without it
        each process only sees its own batch, as transformers' `CLIPModel` loss does.
    crop_min_scale (`float`, defaults to 0.9): smallest area of the random square crop, the paper's only
        augmentation (open_clip's RandomResizedCrop default scale (0.9, 1.0)).
    """

    model_type = "hf_ssl_clip"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="clip")}

    vision_backbone: str | None = None
    text_backbone: str | None = None
    tokenizer_vocab_size: int = 49408
    max_logit_scale: float = 100.0
    gather_distributed: bool = True
    crop_min_scale: float = 0.9

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if (self.vision_backbone or self.text_backbone) and self.backbone_config.model_type == "clip":
            self.backbone_config = self._dual_encoder_config()

    def _dual_encoder_config(self) -> VisionTextDualEncoderConfig:
        """CLIP's towers replaced by the chosen ones; a tower not chosen stays CLIP's."""
        clip = self.backbone_config
        vision: PretrainedConfig = clip.vision_config
        if self.vision_backbone:
            geometry = {"image_size": vision.image_size, "patch_size": vision.patch_size}
            vision, _ = backbone_config_from_spec(self.vision_backbone)
            if not is_checkpoint_spec(self.vision_backbone):  # a new architecture takes the preset's geometry
                for name, value in geometry.items():
                    if hasattr(vision, name):
                        setattr(vision, name, value)
        text: PretrainedConfig = backbone_config_from_spec(self.text_backbone)[0] if self.text_backbone else clip.text_config
        if vision.model_type in _SPATIAL_POOLER_MODEL_TYPES:
            raise ValueError(f"vision_backbone {self.vision_backbone} is a {vision.model_type}, whose pooled output is "
                             "a feature map; choose a transformer image tower (ViT, CLIP vision, ...) or ConvNeXt")
        return VisionTextDualEncoderConfig(
            vision_config=vision.to_dict(), text_config=text.to_dict(), projection_dim=clip.projection_dim,
            logit_scale_init_value=clip.logit_scale_init_value)

    @property
    def text_config(self) -> PretrainedConfig:
        return self.backbone_config.text_config

    def validate_clip(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.backbone_config.model_type not in ("clip", "vision-text-dual-encoder"):
            raise ValueError(f"CLIP needs a clip or vision-text-dual-encoder backbone config, got "
                             f"{self.backbone_config.model_type} (use --vision_backbone / --text_backbone for towers)")
        if not self.max_logit_scale > 1.0:
            raise ValueError(f"max_logit_scale must be > 1, got {self.max_logit_scale}")
        if self.tokenizer_vocab_size < MIN_BPE_VOCAB_SIZE:
            raise ValueError(f"tokenizer_vocab_size must be >= {MIN_BPE_VOCAB_SIZE} (the 256 bytes inside and at the "
                             f"end of a word, plus start and end tokens; merges come on top), got "
                             f"{self.tokenizer_vocab_size}")


__all__ = ["CLIPPretrainingConfig"]
