"""A visual tokenizer around a stock transformers `ViTModel`: image patches -> discrete visual tokens.

BEiT v2's VQ-KD (Peng et al. 2022, Sec. 2.2, Fig. 2), with BEiT v1's pixel target as an option:

    patch tokens of the ViT encoder -> Linear-Tanh-Linear down to `code_dim` -> L2-normalised lookup in the
    codebook by cosine similarity (straight-through gradient) -> decoder (a few ViT blocks over the code grid,
    Linear-Tanh-Linear head) -> the target of each patch: its pixels (MSE) or a frozen teacher's features (cosine).

The loss is the reconstruction term plus the quantizer's commitment term (and codebook term for
`codebook_update="loss"`). The EMA codebook update, the k-means initialisation and dead-code restarts run once
per optimizer step in `on_optimizer_step` (called by `OptimizerStepCallback`), from statistics the forward passes
of the step staged; the codebook usage (perplexity, share of live codes) is logged with the loss terms.

`tokenize(pixel_values)` gives the (B, num_patches) token ids BEiT predicts. The encoder is what is exported;
the full tokenizer (with the teacher's weights when it has one) is saved in `OUT/ssl`.

The classes are named `VisualVQ*`, not `VisualTokenizer*`: transformers' `custom_object_save` (5.23) takes any class
whose name contains "Tokenizer" for a text tokenizer and writes a (slow, fast) pair into `auto_map`, which
`trust_remote_code` loading then cannot read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ViTConfig
from transformers import initialization as init
from transformers.models.vit.modeling_vit import ViTLayer
from transformers.utils import ModelOutput

from ...losses.cosine_reconstruction import cosine_reconstruction_loss
from ...losses.masked_reconstruction import masked_reconstruction_loss
from ..image_method import ImageMethodModel
from ...nn.attention import attention_for
from ...nn.backbone import build_backbone, feature_dim, load_backbone_weights
from ...nn.patches import patchify
from ...nn.vector_quantizer import VectorQuantizer

from .configuration_visual_tokenizer import VisualVQConfig


@dataclass
class VisualVQOutput(ModelOutput):
    """
    loss: reconstruction loss + quantizer loss (None when `return_loss=False`).
    token_ids: (B, N) long, the visual token of every patch.
    reconstruction: (B, N, T) the decoder's prediction of each patch's target (pixels or teacher features).
    quantizer_loss: the commitment (+ codebook) term alone.
    reconstruction_loss: the reconstruction term alone.
    """

    loss: torch.FloatTensor | None = None
    token_ids: torch.LongTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    quantizer_loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None


def projection_head(input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    """Linear-Tanh-Linear: the reference VQ-KD's `encode_task_layer` / `decode_task_layer`."""
    return nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, output_dim))


class CodeDecoder(nn.Module):
    """The decoder over the grid of codes (BEiT v2: a ViT with patch size 1 on the code map, 1 or 3 blocks):
    codes -> width, learnt position embeddings, ViT blocks, LayerNorm, Linear-Tanh-Linear to the target width."""

    def __init__(self, config: VisualVQConfig, output_dim: int):
        super().__init__()
        width = config.decoder_hidden_size
        layer_config = ViTConfig(
            hidden_size=width, num_attention_heads=config.decoder_num_attention_heads,
            intermediate_size=config.decoder_intermediate_size, layer_norm_eps=config.backbone_config.layer_norm_eps,
            qkv_bias=True,
        )
        layer_config._attn_implementation = attention_for(config.backbone_config)
        self.embed = nn.Linear(config.code_dim, width)
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.grid_size**2, width))
        self.layers = nn.ModuleList(ViTLayer(layer_config) for _ in range(config.decoder_num_hidden_layers))
        self.norm = nn.LayerNorm(width, eps=config.backbone_config.layer_norm_eps)
        self.head = projection_head(width, width, output_dim)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(codes) + self.position_embeddings
        for layer in self.layers:
            hidden = layer(hidden)
        return self.head(self.norm(hidden))


class VisualVQModel(ImageMethodModel):
    config_class = VisualVQConfig
    base_model_prefix = "visual_tokenizer"

    def __init__(self, config: VisualVQConfig, tokenize_only: bool = False):
        """`tokenize_only=True` builds only what `tokenize` needs (encoder, projection, codebook): what BEiT keeps."""
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        width = config.backbone_config.hidden_size
        self.encode_projection = projection_head(width, width, config.code_dim)
        self.quantizer = VectorQuantizer(
            config.codebook_size, config.code_dim, update=config.codebook_update, decay=config.codebook_decay,
            commitment_weight=config.commitment_weight, usage_window=config.usage_window,
            restart_dead_codes=config.restart_dead_codes, kmeans_init_iterations=config.kmeans_init_iterations,
        )
        self.decoder = self.teacher = None
        if not tokenize_only:
            if config.target == "teacher":
                self.teacher = build_backbone(config.teacher_config).requires_grad_(False).eval()
                target_dim = feature_dim(config.teacher_config)
            else:
                target_dim = config.patch_size**2 * config.num_channels
            self.decoder = CodeDecoder(config, target_dim)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The reference's init of its own layers: truncated normal (std 0.02) linears, zero biases, unit LayerNorms.
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, CodeDecoder):
            init.trunc_normal_(module.position_embeddings, std=self.config.initializer_range)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # frozen: no dropout, whatever mode the tokenizer is in
        return self

    def load_pretrained_parts(self) -> None:
        """Load the teacher's weights (`--teacher`); they are then saved inside the tokenizer."""
        if self.teacher is not None and self.config.teacher is not None:
            load_backbone_weights(self.teacher, self.config.teacher)
            self.teacher.requires_grad_(False)

    # --- tokens ----------------------------------------------------------------------------------------------

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, code_dim): the encoder's patch tokens projected to the code space, before
        quantization."""
        hidden = self.backbone(pixel_values=pixel_values).last_hidden_state
        num_patches = self.config.grid_size**2
        return self.encode_projection(hidden[:, -num_patches:])   # drop the [CLS] token

    @torch.no_grad()
    def tokenize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The visual token of every patch: (B, C, H, W) normalised pixels -> (B, num_patches) long ids, row-major."""
        return self.quantizer.lookup(self.encode(pixel_values))

    # --- targets ---------------------------------------------------------------------------------------------

    @torch.no_grad()
    def teacher_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's features of each patch of the tokenizer's grid: (B, N, teacher width).

        The pixels are renormalised to the teacher's statistics and resized to its input size; its output tokens
        (the last side**2 of them, after any [CLS]/distillation tokens) or feature map are resampled bilinearly to
        the tokenizer's grid when the grids differ (another patch size or resolution)."""
        config = self.config
        shape = (1, -1, 1, 1)
        mean, std = (pixel_values.new_tensor(v).view(shape) for v in (config.image_mean, config.image_std))
        teacher_mean, teacher_std = (pixel_values.new_tensor(v).view(shape)
                                     for v in (config.teacher_image_mean, config.teacher_image_std))
        pixels = (pixel_values * std + mean - teacher_mean) / teacher_std
        size = getattr(config.teacher_config, "image_size", None)
        if size is not None:
            size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
            if tuple(pixels.shape[-2:]) != size:
                pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
        hidden = self.teacher(pixel_values=pixels).last_hidden_state
        if hidden.dim() == 3:   # tokens: (B, L, C) -> the trailing side**2 patch tokens as a (B, C, side, side) map
            side = math.isqrt(hidden.shape[1])
            hidden = hidden[:, -side * side:].transpose(1, 2).reshape(hidden.shape[0], -1, side, side)
        grid = config.grid_size
        if tuple(hidden.shape[-2:]) != (grid, grid):
            hidden = F.interpolate(hidden.float(), size=(grid, grid), mode="bilinear", align_corners=False)
        return hidden.flatten(2).transpose(1, 2)

    def reconstruction_loss(self, reconstruction: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.config.target == "teacher":
            return cosine_reconstruction_loss(reconstruction, self.teacher_features(pixel_values))
        target = patchify(pixel_values, self.config.patch_size)
        every_patch = torch.ones(target.shape[:2], device=target.device)
        return masked_reconstruction_loss(reconstruction, target, every_patch,
                                          normalize_target=self.config.norm_pix_target)

    # --- training --------------------------------------------------------------------------------------------

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True, **kwargs) -> VisualVQOutput:
        if self.decoder is None:
            raise RuntimeError("this tokenizer was built with tokenize_only=True: it can tokenize, not train")
        quantized = self.quantizer(self.encode(pixel_values))
        reconstruction = self.decoder(quantized.quantized)
        loss = reconstruction_loss = None
        if return_loss:
            reconstruction_loss = self.reconstruction_loss(reconstruction, pixel_values)
            loss = reconstruction_loss + quantized.loss
            self.last_loss_terms = {"reconstruction_loss": reconstruction_loss.detach(),
                                    "quantizer_loss": quantized.loss.detach()}
        return VisualVQOutput(loss=loss, token_ids=quantized.ids, reconstruction=reconstruction,
                                     quantizer_loss=quantized.loss, reconstruction_loss=reconstruction_loss)

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """Once per optimizer step: apply the codebook update staged by the step's forward passes (EMA, k-means
        initialisation, dead-code restarts) and log the codebook usage next to the loss terms."""
        self.last_loss_terms = {**self.last_loss_terms, **self.quantizer.update()}


__all__ = ["CodeDecoder", "VisualVQModel", "VisualVQOutput", "projection_head"]
