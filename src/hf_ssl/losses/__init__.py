"""Self-supervised objectives, one per file, as pure functions (no state, no side effects).

Losses that compare samples across the batch take `gather_distributed=True` to do so over all processes
with gradients (see `hf_ssl.nn.distributed`).
"""

from .barlow_twins import barlow_twins_loss
from .clip import clip_logit_scale, clip_loss
from .cosine_reconstruction import cosine_reconstruction_loss
from .dino import dino_loss, update_center
from .entropy_minimization import entropy_loss
from .info_nce import info_nce_loss
from .masked_language_modeling import masked_language_modeling_loss
from .masked_reconstruction import masked_l1_loss, masked_reconstruction_loss
from .negative_cosine import byol_loss, negative_cosine_similarity
from .negative_sampling import negative_sampling_loss
from .nt_xent import nt_xent_loss
from .pseudo_label import pseudo_label_loss
from .swav import sinkhorn_knopp, swav_loss
from .vicreg import VICRegLoss, vicreg_loss

__all__ = [
    "VICRegLoss", "barlow_twins_loss", "byol_loss", "clip_logit_scale", "clip_loss", "dino_loss", "info_nce_loss", "masked_reconstruction_loss",
    "cosine_reconstruction_loss", "masked_l1_loss", "masked_language_modeling_loss",
    "negative_cosine_similarity", "negative_sampling_loss", "nt_xent_loss", "sinkhorn_knopp", "swav_loss", "update_center", "vicreg_loss",
    "entropy_loss", "pseudo_label_loss",
]
