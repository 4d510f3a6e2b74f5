"""Masked Autoencoders (MAE) around a stock transformers `ViTModel`.

He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022 (arXiv:2111.06377).

The encoder is an unmodified `ViTModel` (what gets exported); MAE calls its parts in the paper's order:
patch embedding + position embedding on *all* patches, drop a random 75% of them, prepend [CLS], run
the transformer blocks on the visible 25% only. The decoder (this class's own weights, discarded after
pretraining) appends a shared learned mask token for every dropped patch, unshuffles, adds its own
position embeddings, runs a few narrow `ViTLayer` blocks and predicts each patch's pixels. The loss is the
MSE on the masked patches only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import ViTConfig
from transformers import initialization as init
from transformers.models.vit.modeling_vit import ViTLayer
from transformers.utils import ModelOutput

from ..image_method import ImageMethodModel
from ..method_model import TRAINING_POSITION, ImagePreview
from ...errors import HfSslError, first_line
from ...losses.masked_reconstruction import masked_reconstruction_loss
from ...nn.attention import attention_for
from ...nn.backbone import build_backbone
from ...nn.masking import gather_tokens, random_masking
from ...nn.patches import patch_mask_to_pixels, patchify, sincos_position_embedding, unpatchify

from .configuration_mae import MAEConfig


@dataclass
class MAEOutput(ModelOutput):
    """
    loss: MSE on the masked patches.
    logits: (B, N, patch_size**2 * C) predicted pixels of every patch (in the target's normalisation).
    mask: (B, N) 1 for masked patches.
    ids_restore: (B, N) unshuffling permutation of the masking.
    last_hidden_state: (B, 1 + visible, D) encoder output on the visible patches.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


class MAEForPreTraining(ImageMethodModel):
    config_class = MAEConfig
    base_model_prefix = "mae"

    def __init__(self, config: MAEConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        grid = config.image_size // config.patch_size
        self.num_patches = grid * grid
        decoder_config = ViTConfig(
            hidden_size=config.decoder_hidden_size,
            num_hidden_layers=config.decoder_num_hidden_layers,
            num_attention_heads=config.decoder_num_attention_heads,
            intermediate_size=config.decoder_intermediate_size,
            layer_norm_eps=config.backbone_config.layer_norm_eps,
            qkv_bias=True,
        )
        decoder_config._attn_implementation = attention_for(config.backbone_config)
        self.decoder_embed = nn.Linear(config.backbone_config.hidden_size, config.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        self.decoder_position_embeddings = nn.Parameter(
            torch.zeros(1, self.num_patches + 1, config.decoder_hidden_size),
            requires_grad=not config.fixed_position_embeddings,
        )
        self.decoder_layers = nn.ModuleList(ViTLayer(decoder_config) for _ in range(config.decoder_num_hidden_layers))
        self.decoder_norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.backbone_config.layer_norm_eps)
        self.decoder_pred = nn.Linear(config.decoder_hidden_size, config.patch_size**2 * config.num_channels)
        if config.fixed_position_embeddings:
            # Frozen (no gradient), but still saved: the exported ViT carries them as its initial values.
            self.backbone.embeddings.position_embeddings.requires_grad_(False)
        self._init_encoder_as_in_paper()
        self.post_init()

    @torch.no_grad()
    def _init_encoder_as_in_paper(self) -> None:
        """The reference code's encoder init, replacing ViT's N(0, 0.02): xavier-uniform linears and patch
        projection (as a flattened matrix). With N(0, 0.02) the patch tokens start ~4x smaller than the
        sin-cos positions, and pooled features are mostly position. Runs at construction only, so weights
        loaded later (from_pretrained, --backbone CHECKPOINT) are never touched."""
        for module in self.backbone.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        projection = self.backbone.embeddings.patch_embeddings.projection.weight
        nn.init.xavier_uniform_(projection.view(projection.shape[0], -1))

    def _init_weights(self, module: nn.Module) -> None:
        # The paper's initialisation (reference code): xavier-uniform linears, N(0, 0.02) mask token,
        # sin-cos position embeddings when fixed.
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif module is self:
            init.normal_(self.mask_token, std=self.config.initializer_range)
            grid = self.config.image_size // self.config.patch_size
            if self.config.fixed_position_embeddings:
                init.copy_(self.decoder_position_embeddings,
                           sincos_position_embedding(self.config.decoder_hidden_size, grid))
                init.copy_(self.backbone.embeddings.position_embeddings,
                           sincos_position_embedding(self.config.backbone_config.hidden_size, grid))
            else:
                init.trunc_normal_(self.decoder_position_embeddings, std=self.config.initializer_range)

    def encode_visible(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None,
                       mask_ratio: float | None = None):
        """Run the ViT encoder on a random visible subset of patches. Returns (hidden, mask, ids_restore).

        `noise` (B, N) fixes the masks (smallest noise = visible), e.g. for reproducible visualisations.
        """
        embeddings = self.backbone.embeddings
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        tokens = embeddings.patch_embeddings(pixel_values.to(embeddings.patch_embeddings.projection.weight.dtype))
        tokens = tokens + embeddings.position_embeddings[:, 1:]
        batch_size, num_patches, _ = tokens.shape
        ids_keep, mask, ids_restore = random_masking(batch_size, num_patches, ratio, device=tokens.device, noise=noise)
        tokens = gather_tokens(tokens, ids_keep)
        cls = (embeddings.cls_token + embeddings.position_embeddings[:, :1]).expand(batch_size, -1, -1)
        hidden = embeddings.dropout(torch.cat([cls, tokens], dim=1))
        for layer in self.backbone.layers:
            hidden = layer(hidden)
        return self.backbone.layernorm(hidden), mask, ids_restore

    def load_encoder_weights(self, checkpoint: str) -> None:
        """`--backbone CHECKPOINT`: a ViT checkpoint's weights into the encoder; a transformers `vit_mae` checkpoint's
        (`facebook/vit-mae-base`, whose geometry the config adopted: `MAEConfig._adopt_vit_mae`) into the whole
        model, decoder included, so that pretraining continues where the checkpoint stopped."""
        from transformers import AutoConfig, ViTMAEForPreTraining

        from .convert_mae import from_vit_mae_state_dict

        try:
            if AutoConfig.from_pretrained(checkpoint).model_type != "vit_mae":
                return super().load_encoder_weights(checkpoint)
            source = ViTMAEForPreTraining.from_pretrained(checkpoint, use_safetensors=True)
        except (OSError, ValueError) as e:
            raise HfSslError(f"cannot load MAE weights from {checkpoint}: {first_line(e)}") from None
        missing, unexpected = self.load_state_dict(from_vit_mae_state_dict(source.state_dict()), strict=False)
        missing = [name for name in missing if name not in TRAINING_POSITION]
        if missing or unexpected:
            raise HfSslError(f"the vit_mae checkpoint {checkpoint} does not map onto hf-ssl's MAE: missing "
                             f"{missing[:3]}, unexpected {unexpected[:3]}")

    def decode(self, hidden: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict the pixels of every patch from the encoded visible tokens: (B, N, patch_size**2 * C)."""
        tokens = self.decoder_embed(hidden)
        batch_size, num_patches = ids_restore.shape
        mask_tokens = self.mask_token.expand(batch_size, num_patches + 1 - tokens.shape[1], -1)
        patches = gather_tokens(torch.cat([tokens[:, 1:], mask_tokens], dim=1), ids_restore)
        tokens = torch.cat([tokens[:, :1], patches], dim=1) + self.decoder_position_embeddings
        for layer in self.decoder_layers:
            tokens = layer(tokens)
        return self.decoder_pred(self.decoder_norm(tokens))[:, 1:]

    @torch.no_grad()
    def preview(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None,
                eps: float = 1e-6) -> ImagePreview:
        """The card's reconstruction plot: mask `pixel_values` (B, C, H, W, normalised inputs) at the configured ratio
        (random masks drawn from the CPU `generator`) and predict every patch.

        `hidden` is True where a patch was hidden from the encoder; the prediction is in the same normalisation as
        `pixel_values`. With `norm_pix_loss` the decoder predicts each
        patch normalised by its own mean and variance; the prediction is mapped back with the *true* patch's mean
        and variance (`pred * sqrt(var + eps) + mean`), as the MAE authors' visualisation does: the shown
        reconstruction takes each masked patch's brightness and contrast from the original."""
        batch_size = pixel_values.shape[0]
        patch = self.config.patch_size
        noise = torch.rand(batch_size, self.num_patches, generator=generator).to(pixel_values.device)
        hidden, mask, ids_restore = self.encode_visible(pixel_values, noise=noise)
        prediction = self.decode(hidden, ids_restore).float()
        if self.config.norm_pix_loss:
            target = patchify(pixel_values.float(), patch)
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            prediction = prediction * (var + eps) ** 0.5 + mean
        height, width = pixel_values.shape[-2:]
        reconstruction = unpatchify(prediction, patch, self.config.num_channels, height, width)
        return ImagePreview(reconstruction=reconstruction, hidden=patch_mask_to_pixels(mask, patch, height, width))

    def forward(self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None, return_loss: bool = True,
                **kwargs) -> MAEOutput:
        hidden, mask, ids_restore = self.encode_visible(pixel_values, noise=noise)
        prediction = self.decode(hidden, ids_restore)
        target = patchify(pixel_values, self.config.patch_size)
        loss = masked_reconstruction_loss(prediction, target, mask, normalize_target=self.config.norm_pix_loss)
        return MAEOutput(loss=loss, logits=prediction, mask=mask, ids_restore=ids_restore, last_hidden_state=hidden)


__all__ = ["MAEForPreTraining", "MAEOutput"]
