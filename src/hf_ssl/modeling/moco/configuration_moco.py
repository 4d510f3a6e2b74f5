"""Configuration of MoCo v2 and MoCo v3 (one method, a `version` field).

- MoCo v2: Chen, Fan, Girshick, He, "Improved Baselines with Momentum Contrastive Learning" (arXiv:2003.04297),
  on MoCo v1 (He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual Representation Learning",
  CVPR 2020, arXiv:1911.05722). A query encoder (backbone + 2-layer MLP head), a key encoder that is its
  momentum copy (m = 0.999), a queue of K = 65536 negative keys, InfoNCE with tau = 0.2, "aug+" augmentation.
- MoCo v3: Chen, Xie, He, "An Empirical Study of Training Self-Supervised Vision Transformers", ICCV 2021
  (arXiv:2104.02057). No queue: the keys of the batch are the negatives; a projector (3 layers for ViT, 2 for
  ResNet in the reference code) and a predictor on the query side, a momentum encoder whose coefficient follows
  a cosine from 0.99 to 1, a symmetrised loss scaled by 2 tau, BYOL's augmentations.

Fields whose paper value differs between the versions (or, for v3, between ViT and ResNet) default to None and
are resolved in `__post_init__`, so `MoCoConfig(version=3)` has v3's paper values and a saved config holds the
resolved numbers.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import TwoViewAugmentationConfig
from ...nn.backbone import is_token_backbone

VERSIONS = (2, 3)

# Paper values per version. v3 entries given as (ViT, ResNet) differ by backbone in the reference code and
# recipes (github.com/facebookresearch/moco-v3: main_moco.py defaults and CONFIG.md).
_V2_DEFAULTS = dict(
    projection_hidden_dim=2048, projection_dim=128, projection_num_layers=2, temperature=0.2, momentum=0.999,
    queue_size=65536, symmetric=False, crop_min_scale=0.2, freeze_patch_embedding=False,
)
_V3_DEFAULTS = dict(projection_hidden_dim=4096, projection_dim=256, prediction_hidden_dim=4096, momentum=0.99,
                    final_momentum=1.0, symmetric=True)
_V3_BY_BACKBONE = dict(  # name: (ViT, ResNet / other conv nets)
    projection_num_layers=(3, 2), temperature=(0.2, 1.0), crop_min_scale=(0.08, 0.2),
    freeze_patch_embedding=(True, False),
)


@strict
class MoCoConfig(TwoViewAugmentationConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder (ResNet-50 in MoCo v2; ViT-B/16 is MoCo v3's headline,
        ResNet-50 its other setting). Its `image_size` is the training resolution. Exported as its native class.
    version (`int`, defaults to 3): 2 for MoCo v2 (queue of negatives), 3 for MoCo v3 (in-batch negatives,
        predictor, symmetric loss). The fields below marked None are resolved from it.
    projection_hidden_dim (`int`, v2: 2048, v3: 4096): hidden width of the projection MLP (v2: "a 2-layer MLP
        head (hidden layer 2048-d, with ReLU)", Sec. 2; v3: `--moco-mlp-dim 4096`).
    projection_dim (`int`, v2: 128, v3: 256): output width, where the loss is computed.
    projection_num_layers (`int`, v2: 2, v3: 3 for ViT and 2 for ResNet as the reference `_build_projector_and_
        predictor_mlps`): Linear layers of the projector. MoCo v2's head has exactly 2 (no BatchNorm); v3's has
        BatchNorm on every layer and an affine-free BatchNorm on the output.
    prediction_hidden_dim (`int`, v3: 4096; v2: unused): hidden width of v3's 2-layer predictor (output =
        `projection_dim`).
    temperature (`float`, v2: 0.2, v3: 0.2 for ViT and 1.0 for ResNet): tau of InfoNCE (v2 Sec. 2 and Table 1;
        v3: the ViT recipes' `--moco-t=.2`, and the reference default 1.0 that its ResNet-50 recipes keep).
    momentum (`float`, v2: 0.999, v3: 0.99): EMA coefficient m of the key (momentum) encoder at the start of
        training (v1 Sec. 3.2, m = 0.999; v3 `--moco-m 0.99`).
    final_momentum (`float`, v2: = momentum, v3: 1.0): value of m at the end of training; m follows
        `cosine_momentum` from `momentum` to it, once per optimizer step (v3 `--moco-m-cos`,
        `adjust_moco_momentum`). v2's m is constant.
    queue_size (`int`, v2: 65536; unused by v3): K, the number of negative keys kept from earlier batches (v1
        Sec. 3.2 and Table / Fig. 3). Initialised with random unit vectors, as the reference.
    symmetric (`bool`, v2: False, v3: True): also contrast view 2's query with view 1's key. v3's loss is the sum
        ctr(q1, k2) + ctr(q2, k1) (Alg. 1); a symmetric v2 averages its two directions (so its value stays on the
        one-direction scale, about log(K + 1) at chance) and enqueues the keys of both views.
    crop_min_scale (`float`, v2: 0.2, v3: 0.08 for ViT and 0.2 for ResNet): smallest area of the random resized
        crop (v2's "aug+" and v3's `--crop-min`).
    freeze_patch_embedding (`bool`, v3 with ViT: True, else False): keep the ViT patch projection at its random
        initialisation ("random patch projection", v3 Sec. 4.2; `--stop-grad-conv1` in the ViT
        recipes). Needs a backbone with `embeddings.patch_embeddings`.
    gather_distributed (`bool`, defaults to `True`): v3: the keys of all processes are candidates (the global
        batch, `concat_all_gather`); v2: the keys of all processes are enqueued (the loss itself is per process,
        as the reference).
    initializer_range (`float`, defaults to 0.01): std of the normal init of the heads' linear layers.

    The loss of v3 is multiplied by 2 tau as in the reference `contrastive_loss` (it keeps the gradient scale
    independent of tau); v2's is not. The augmentations are fixed per version: v2's "aug+" (SimCLR's pipeline with
    colour strength 0.5 and blur p = 0.5, v2 Sec. 2), v3's BYOL pair (v3 Sec. 5, reference `main_moco.py`).
    """

    model_type = "hf_ssl_moco"
    augmentation_fields = ("crop_min_scale",)  # the rest of each version's pipeline is fixed (see below)
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    version: int = 3
    projection_hidden_dim: int | None = None
    projection_dim: int | None = None
    projection_num_layers: int | None = None
    prediction_hidden_dim: int | None = None
    temperature: float | None = None
    momentum: float | None = None
    final_momentum: float | None = None
    queue_size: int | None = None
    symmetric: bool | None = None
    crop_min_scale: float | None = None  # per version and backbone (_V2_DEFAULTS, _V3_BY_BACKBONE)
    freeze_patch_embedding: bool | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.version not in VERSIONS:
            return  # left unresolved; validate_moco names the bad version
        if self.version == 2:
            defaults = dict(_V2_DEFAULTS)
            # m is constant in v2 unless a final value is given: the default end point is the start point.
            defaults["final_momentum"] = self.momentum if self.momentum is not None else defaults["momentum"]
        else:
            vit = is_token_backbone(self.backbone_config)
            defaults = {**_V3_DEFAULTS, **{name: pair[0 if vit else 1] for name, pair in _V3_BY_BACKBONE.items()}}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate_moco(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.version not in VERSIONS:
            raise ValueError(f"version must be 2 (MoCo v2) or 3 (MoCo v3), got {self.version}")
        for name in ("projection_hidden_dim", "projection_dim", "projection_num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.version == 2 and self.projection_num_layers != 2:
            raise ValueError(f"projection_num_layers must be 2 with version 2 (MoCo v2's 2-layer MLP head), "
                             f"got {self.projection_num_layers}")
        if self.version == 3 and self.prediction_hidden_dim < 1:
            raise ValueError(f"prediction_hidden_dim must be >= 1, got {self.prediction_hidden_dim}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {self.momentum}")
        if not self.momentum <= self.final_momentum <= 1.0:
            raise ValueError(f"final_momentum must be in [momentum, 1] = [{self.momentum}, 1], got {self.final_momentum}")
        if self.version == 2 and (self.queue_size is None or self.queue_size < 1):
            raise ValueError(f"queue_size must be >= 1 with version 2 (the number of negative keys), got {self.queue_size}")
        if self.freeze_patch_embedding and not is_token_backbone(self.backbone_config):
            raise ValueError(f"freeze_patch_embedding needs a ViT-style backbone with a patch embedding, got "
                             f"model_type {self.backbone_config.model_type!r}")


__all__ = ["MoCoConfig"]
