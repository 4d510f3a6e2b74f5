"""CLIP's symmetric image-text contrastive loss (Radford et al., ICML 2021, Fig. 3 pseudocode)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..nn.distributed import gather_with_grad, rank

# The paper initialises the temperature to 0.07 (logit scale 1 / 0.07) and clips the scale at 100 "to prevent
# scaling the logits by more than 100, which we found necessary to prevent training instability" (Sec. 2.5).
INITIAL_LOG_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = 100.0


def clip_logit_scale(log_logit_scale: torch.Tensor, max_scale: float = MAX_LOGIT_SCALE) -> torch.Tensor:
    """exp(t) of the pseudocode, clipped at `max_scale`. `t` is learned in log space (a scalar parameter);
    the clip passes no gradient to t while exp(t) > max_scale, as clamping does in open_clip and transformers."""
    return log_logit_scale.exp().clamp(max=max_scale)


def clip_loss(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor | float,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """(CE over texts for each image + CE over images for each text) / 2 on scaled cosine similarities.

    Args:
        image_embeds, text_embeds: (N, D) projections of N aligned image-text pairs (row i of both is pair i);
            they are L2-normalised here.
        logit_scale: exp(t), already exponentiated (and clipped: see `clip_logit_scale`).
        gather_distributed: score the local images against the texts of ALL processes and the local texts
            against all images, with gradients through the gather (open_clip's `--gather-with-grad
            --local-loss`). transformers' `CLIPModel` computes the loss on each process's own batch only, which
            gives each pair N_local - 1 negatives instead of N_global - 1.

    Distributed: each rank averages over its local anchors, so the mean of the rank losses is the loss of the
    global batch; each rank's inputs receive world_size x the global-batch gradient (the gather's backward sums
    every rank's contribution), which DDP's averaging turns back into it. Needs equal local batch sizes.
    """
    image_embeds, text_embeds = F.normalize(image_embeds, dim=-1), F.normalize(text_embeds, dim=-1)
    n = image_embeds.shape[0]
    all_images = gather_with_grad(image_embeds) if gather_distributed else image_embeds
    all_texts = gather_with_grad(text_embeds) if gather_distributed else text_embeds
    labels = torch.arange(n, device=image_embeds.device) + (rank() * n if gather_distributed else 0)
    logits_per_image = logit_scale * image_embeds @ all_texts.T  # (n, N): each local image against every text
    logits_per_text = logit_scale * text_embeds @ all_images.T  # (n, N): each local text against every image
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
