"""BEiT: masked image modelling with visual tokens, around a stock transformers `ViTModel`.

Bao et al., "BEiT: BERT Pre-Training of Image Transformers", ICLR 2022 (arXiv:2106.08254), Sec. 2.

A frozen visual tokenizer (`modeling/visual_tokenizer`, loaded from `--tokenizer`) turns each patch of the
*unmasked* image into one of K visual tokens. About 40% of the patches are masked blockwise (Algorithm 1); the
encoder sees the image with those patch embeddings replaced by a learnable [MASK] embedding, and a linear head
over its final states predicts, at every masked position, a softmax over the K tokens. The loss is the
cross-entropy of the tokenizer's ids at the masked positions only (Eq. 1), exactly like BERT's MLM.

The encoder (without the mask token, which this class owns) is exported as a native ViT; the tokenizer's
encoder and codebook are kept inside the pretraining model, so that `OUT/ssl` is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...errors import HfSslError, first_line
from ...losses.masked_language_modeling import masked_language_modeling_loss
from ..image_method import ImageMethodModel
from ..visual_tokenizer.modeling_visual_tokenizer import VisualVQModel
from ...nn.backbone import build_backbone
from ...nn.masking import blockwise_masking, encode_with_mask_token, mask_token_width
from ...nn.token_masking import IGNORE_INDEX

from .configuration_beit import BEiTConfig, tokenizer_location


@dataclass
class BEiTOutput(ModelOutput):
    """
    loss: cross-entropy of the visual tokens at the masked positions (None when `return_loss=False`).
    logits: (B, N, K) scores over the tokenizer's codebook at every patch position.
    bool_masked_pos: (B, N) True for the masked patches.
    target_ids: (B, N) the tokenizer's ids of the unmasked image (None when `return_loss=False`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    bool_masked_pos: torch.BoolTensor | None = None
    target_ids: torch.LongTensor | None = None


class BEiTForPreTraining(ImageMethodModel):
    config_class = BEiTConfig
    base_model_prefix = "beit"

    def __init__(self, config: BEiTConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, mask_token_width(config.backbone_config)))
        # Only what tokenizing needs (no decoder, no teacher); frozen: the targets never move.
        self.tokenizer = VisualVQModel(config.tokenizer_config, tokenize_only=True).requires_grad_(False)
        self.head = nn.Linear(config.backbone_config.hidden_size, config.tokenizer_config.codebook_size)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # The reference's init of BEiT's own parameters: truncated normal (std 0.02) mask token and head, zero bias.
        # (The backbone and the tokenizer are PreTrainedModels that initialise themselves.)
        if module is self:
            for weight in (self.mask_token, self.head.weight):
                init.trunc_normal_(weight, std=self.config.initializer_range)
            init.zeros_(self.head.bias)

    def train(self, mode: bool = True):
        super().train(mode)
        self.tokenizer.eval()
        return self

    def load_pretrained_parts(self) -> None:
        """Load the visual tokenizer's weights from `--tokenizer` (its encoder, projection and codebook)."""
        path = self.config.tokenizer
        if path is None:
            return
        try:
            source = VisualVQModel.from_pretrained(**tokenizer_location(path)).state_dict()
        except (OSError, ValueError) as error:
            raise HfSslError(f"cannot load the visual tokenizer {path}: {first_line(error)}") from None
        wanted = self.tokenizer.state_dict()
        missing = [name for name in wanted if name not in source]
        if missing:
            raise HfSslError(f"{path} is not a complete visual tokenizer: missing {', '.join(missing[:3])}")
        self.tokenizer.load_state_dict({name: source[name] for name in wanted})

    def random_mask(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """BEiT's blockwise mask for a batch: (B, N) bool."""
        config = self.config
        return blockwise_masking(batch_size, config.grid_size, config.num_masking_patches,
                                 min_block_patches=config.mask_min_block_patches, min_aspect=config.mask_min_aspect,
                                 device=device)

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None,
                target_ids: torch.Tensor | None = None, return_loss: bool = True, **kwargs) -> BEiTOutput:
        """pixel_values: (B, C, H, W); bool_masked_pos: (B, N) the patches to mask (default: drawn blockwise);
        target_ids: (B, N) the visual tokens to predict (default: the tokenizer's ids of `pixel_values`)."""
        if bool_masked_pos is None:
            bool_masked_pos = self.random_mask(pixel_values.shape[0], pixel_values.device)
        hidden = encode_with_mask_token(self.backbone, pixel_values, bool_masked_pos, self.mask_token)
        logits = self.head(hidden[:, -bool_masked_pos.shape[1]:])   # the patch tokens, without [CLS]
        loss = None
        if return_loss:
            if target_ids is None:
                target_ids = self.tokenizer.tokenize(pixel_values)
            # BERT's loss on visual tokens: the cross-entropy of the masked positions only (Eq. 1)
            loss = masked_language_modeling_loss(logits, target_ids.masked_fill(~bool_masked_pos.bool(), IGNORE_INDEX))
            with torch.no_grad():
                masked = bool_masked_pos.bool()
                accuracy = (logits[masked].argmax(-1) == target_ids[masked]).float().mean()
            self.last_loss_terms = {"masked_token_accuracy": accuracy}
        return BEiTOutput(loss=loss, logits=logits, bool_masked_pos=bool_masked_pos, target_ids=target_ids)


__all__ = ["BEiTForPreTraining", "BEiTOutput"]
