"""Configuration of the visual tokenizer: a vector-quantized encoder that turns each image patch into one of K
visual tokens, the targets of BEiT's masked image modelling.

Bao, Dong, Piao, Wei. "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022 (arXiv:2106.08254), Sec. 2.1.2:
a discrete VAE (DALL-E's) reconstructs the pixels from 8192 visual tokens. Peng, Dong, Bao, Ye, Wei. "BEiT v2:
Masked Image Modeling with Vector-Quantized Visual Tokenizers", 2022 (arXiv:2208.06366), Sec. 2.2 (VQ-KD): a ViT
encoder, an L2-normalised codebook of 8192 32-d codes looked up by cosine similarity and updated by EMA, and a
decoder that reconstructs a teacher's per-patch features with a cosine loss. The defaults are BEiT v2's.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, AutoImageProcessor, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

from ...errors import first_line
from ..image_method import ImageMethodConfig
from ...nn.vector_quantizer import UPDATE_RULES

TARGETS = ("pixels", "teacher")


@strict
class VisualVQConfig(ImageMethodConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder, a ViT (`ViTConfig`); its `image_size` and `patch_size` define
        the patches, one visual token each. Exported as a native `ViTModel`.
    codebook_size (`int`, defaults to 8192): K, the number of visual tokens (BEiT, BEiT v2).
    code_dim (`int`, defaults to 32): width of the codes (BEiT v2 Sec. 2.2: a low-dimensional codebook is used
        better; the encoder output is projected down to it).
    codebook_update (`str`, defaults to "ema"): "ema" (BEiT v2: moving average of the assigned encoder outputs) or
        "loss" (VQ-VAE's codebook loss `||sg[z] - e||^2`).
    codebook_decay (`float`, defaults to 0.99): decay of the EMA codebook update (BEiT v2 reference).
    commitment_weight (`float`, defaults to 1.0): weight of `||z - sg[e]||^2` (BEiT v2 Eq. 2 weighs it 1).
    kmeans_init_iterations (`int`, defaults to 10): spherical k-means iterations initialising the codebook on the
        first step's encoder outputs (BEiT v2 reference `--quantize_kmeans_init`); 0: random unit vectors.
    usage_window (`int`, defaults to 100): optimizer steps over which a code counts as live (logged share).
    restart_dead_codes (`bool`, defaults to `True`): re-seed codes unused for `usage_window` steps with recent
        encoder outputs (not in BEiT v2, whose codebook stays ~100% used at ImageNet scale; short runs need it).
    target (`str`, defaults to "pixels"): what the decoder reconstructs from the codes: "pixels" of each patch
        (BEiT v1's tokenizer objective, mean squared error), or "teacher": the per-patch features of a frozen
        image encoder (BEiT v2's VQ-KD, cosine loss).
    norm_pix_target (`bool`, defaults to `False`): with target "pixels", normalise each target patch by its own mean
        and variance (as MAE's target); off: the tokens also carry brightness and contrast.
    teacher (`str`, *optional*): with target "teacher", the encoder to distil: a folder written by `hf-ssl pretrain`
        (its root), any transformers vision checkpoint folder, or a Hub id. Its architecture is read into
        `teacher_config` when this config is created, its weights in `load_pretrained_parts`; both are saved with
        the tokenizer, which is thus self-contained.
    teacher_config (`PretrainedConfig`, *optional*): the teacher's architecture (filled from `teacher`).
    teacher_image_mean / teacher_image_std (`list[float]`, *optional*): the pixel normalisation the teacher expects
        (read from its image processor; the tokenizer's own when it has none).
    decoder_hidden_size / decoder_num_hidden_layers / decoder_num_attention_heads / decoder_intermediate_size: the
        transformer decoder over the code grid (BEiT v2: the encoder's width, 1 or 3 layers; 0 layers: the
        projection head alone).
    crop_min_scale (`float`, defaults to 0.08): smallest area of the random resized crop (BEiT v2 reference).
    horizontal_flip (`bool`, defaults to `True`): random horizontal flips.
    initializer_range (`float`, defaults to 0.02): std of the truncated-normal init of the projections and decoder.
    """

    model_type = "hf_ssl_visual_tokenizer"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="vit"),
        "teacher_config": SubConfigSpec(config_class=AutoConfig, model_type="vit", optional=True),
    }

    codebook_size: int = 8192
    code_dim: int = 32
    codebook_update: str = "ema"
    codebook_decay: float = 0.99
    commitment_weight: float = 1.0
    kmeans_init_iterations: int = 10
    usage_window: int = 100
    restart_dead_codes: bool = True
    target: str = "pixels"
    norm_pix_target: bool = False
    teacher: str | None = None
    teacher_config: dict | PretrainedConfig | None = None
    teacher_image_mean: list[float] | None = None
    teacher_image_std: list[float] | None = None
    decoder_hidden_size: int = 768
    decoder_num_hidden_layers: int = 1
    decoder_num_attention_heads: int = 12
    decoder_intermediate_size: int = 3072
    crop_min_scale: float = 0.08
    horizontal_flip: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.teacher is not None and self.teacher_config is None:
            self.teacher_config, mean, std = _read_teacher(self.teacher)
            self.teacher_image_mean = self.teacher_image_mean or mean
            self.teacher_image_std = self.teacher_image_std or std
        super().__post_init__(**kwargs)
        if self.teacher_config is not None:
            self.teacher_image_mean = self.teacher_image_mean or list(self.image_mean)
            self.teacher_image_std = self.teacher_image_std or list(self.image_std)

    @property
    def grid_size(self) -> int:
        """Patches per side: the tokenizer turns an image into grid_size**2 tokens."""
        return self.image_size // self.patch_size

    def validate_visual_tokenizer(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.backbone_config.model_type != "vit":
            raise ValueError(f"the visual tokenizer needs a ViT encoder (model_type 'vit'), got "
                             f"'{self.backbone_config.model_type}'")
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be at least 2, got {self.codebook_size}")
        if self.code_dim < 1:
            raise ValueError(f"code_dim must be at least 1, got {self.code_dim}")
        if self.codebook_update not in UPDATE_RULES:
            raise ValueError(f"codebook_update must be one of {', '.join(UPDATE_RULES)}, got '{self.codebook_update}'")
        if not 0.0 <= self.codebook_decay < 1.0:
            raise ValueError(f"codebook_decay must be in [0, 1), got {self.codebook_decay}")
        if self.commitment_weight < 0:
            raise ValueError(f"commitment_weight must be >= 0, got {self.commitment_weight}")
        if self.kmeans_init_iterations < 0:
            raise ValueError(f"kmeans_init_iterations must be >= 0, got {self.kmeans_init_iterations}")
        if self.usage_window < 1:
            raise ValueError(f"usage_window must be at least 1 step, got {self.usage_window}")
        if self.decoder_num_hidden_layers < 0 or self.decoder_hidden_size < 1 or self.decoder_intermediate_size < 1:
            raise ValueError(
                f"decoder_num_hidden_layers must be >= 0 and decoder_hidden_size / decoder_intermediate_size >= 1, "
                f"got {self.decoder_num_hidden_layers}, {self.decoder_hidden_size}, {self.decoder_intermediate_size}")
        if self.decoder_num_attention_heads < 1 or self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(f"decoder_hidden_size {self.decoder_hidden_size} must be a positive multiple of "
                             f"decoder_num_attention_heads {self.decoder_num_attention_heads}")
        if not 0.0 <= self.initializer_range <= 1.0:
            raise ValueError(f"initializer_range must be in [0, 1], got {self.initializer_range}")

    def validate_target(self):
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got '{self.target}'")
        if self.target == "teacher" and self.teacher_config is None:
            raise ValueError("target 'teacher' (VQ-KD) needs a teacher encoder: pass --teacher PATH_OR_HUB_ID "
                             "(e.g. the output folder of an `hf-ssl pretrain` run), or use --target pixels")
        for name in ("teacher_image_mean", "teacher_image_std"):
            values = getattr(self, name)
            if self.teacher_config is not None and len(values) != self.teacher_config.num_channels:
                raise ValueError(f"{name} needs {self.teacher_config.num_channels} values (one per channel of the "
                                 f"teacher), got {values}")


def _read_teacher(teacher: str):
    """The teacher's config and pixel normalisation: (config, mean or None, std or None). A folder written by
    `hf-ssl pretrain` holds its encoder at the root; its `ssl/` folder holds the pretraining model, not an encoder."""
    try:
        config = AutoConfig.from_pretrained(teacher)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the teacher '{teacher}': {first_line(error)}") from None
    if getattr(config, "backbone_config", None) is not None and config.model_type.startswith("hf_ssl_"):
        raise ValueError(f"the teacher '{teacher}' is an hf-ssl pretraining model: pass the output folder itself "
                         "(its root holds the encoder), not its ssl/ subfolder")
    try:
        processor = AutoImageProcessor.from_pretrained(teacher)
        return config, list(processor.image_mean), list(processor.image_std)
    except (OSError, ValueError, AttributeError, TypeError):
        return config, None, None


__all__ = ["TARGETS", "VisualVQConfig"]
