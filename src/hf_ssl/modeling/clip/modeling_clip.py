"""CLIP pretraining (Radford et al., ICML 2021) around a native transformers `CLIPModel`.

The model that is trained is the model that is exported: `self.clip` is a stock `CLIPModel` (or a
`VisionTextDualEncoderModel` with other towers), so the learned projections and temperature are exactly what
`pipeline("zero-shot-image-classification")` uses later. What hf-ssl adds is the objective of the paper's Fig. 3
over the global batch (`hf_ssl.losses.clip_loss`, gathered across processes with gradient) with the clipped
temperature, and the per-step clamp of the temperature parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import AutoModel
from transformers.utils import ModelOutput

from ...losses.clip import clip_logit_scale, clip_loss
from ..image_method import ImageMethodModel
from ...nn.backbone import load_backbone_weights
from ...nn.backbone_presets import is_checkpoint_spec

from .configuration_clip import CLIPPretrainingConfig


@dataclass
class CLIPPretrainingOutput(ModelOutput):
    r"""
    loss: the symmetric contrastive loss over the (global) batch.
    logits_per_image: (B, B) scaled cosine similarities of the local images to the local captions.
    image_embeds, text_embeds: (B, projection_dim) L2-normalised embeddings.
    logit_scale: exp(t) after the clip, the inverse temperature the loss used.
    """

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    logit_scale: torch.Tensor | None = None


class CLIPForPreTraining(ImageMethodModel):
    config_class = CLIPPretrainingConfig
    base_model_prefix = "clip"
    input_modalities = ("image", "text")

    def __init__(self, config: CLIPPretrainingConfig):
        super().__init__(config)
        self.clip = AutoModel.from_config(config.backbone_config)
        self.post_init()

    def _init_weights(self, module):
        # every weight belongs to the native model, which initialises its own modules (CLIP's scaled inits)
        pass

    def get_encoder(self):
        """The whole native model: `--backbone CLIP_CHECKPOINT` continues from both towers and the temperature."""
        return self.clip

    def load_pretrained_parts(self) -> None:
        """Start the towers named by `vision_backbone` / `text_backbone` from their checkpoints' weights."""
        for spec, tower in ((self.config.vision_backbone, "vision_model"), (self.config.text_backbone, "text_model")):
            if spec and is_checkpoint_spec(spec):
                load_backbone_weights(getattr(self.clip, tower), spec)

    def no_weight_decay(self) -> set[str]:
        """The temperature is not decayed (open_clip excludes it too): decay would pull it towards 1."""
        return {"clip.logit_scale"}

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.clip.get_image_features(pixel_values=pixel_values).pooler_output

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output

    def logit_scale(self) -> torch.Tensor:
        return clip_logit_scale(self.clip.logit_scale, self.config.max_logit_scale)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_loss: bool = True, **kwargs) -> CLIPPretrainingOutput:
        image_embeds = F.normalize(self.image_embeddings(pixel_values), dim=-1)
        text_embeds = F.normalize(self.text_embeddings(input_ids, attention_mask), dim=-1)
        scale = self.logit_scale()
        loss = clip_loss(image_embeds, text_embeds, scale, self.config.gather_distributed)
        self.last_embeddings = image_embeds.detach()  # read by the collapse monitor
        self.last_loss_terms = {"logit_scale": scale.detach()}
        return CLIPPretrainingOutput(loss=loss, logits_per_image=scale * image_embeds @ text_embeds.T,
                                     image_embeds=image_embeds, text_embeds=text_embeds, logit_scale=scale.detach())

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """After each optimizer step: keep t in [0, log(max_logit_scale)], as open_clip does, so that the exported
        temperature (which transformers' CLIPModel uses unclipped) is the one training used."""
        self.clip.logit_scale.clamp_(0, math.log(self.config.max_logit_scale))


__all__ = ["CLIPForPreTraining", "CLIPPretrainingOutput"]
