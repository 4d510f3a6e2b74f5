"""What joint-embedding methods (SimCLR, MoCo, BYOL, SimSiam, SwAV, VICReg, Barlow Twins, DINO) share on top of
`image_method`: the input-size default of conv backbones, the cross-process switch, the initialisation of
their heads, their augmentation fields, and turning a (B, V, C, H, W) batch of views into one backbone call. A
method's folder adds its heads, its loss and its per-step hook (`on_optimizer_step`); the collators of the views
are in `data/collators.py`."""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import initialization as init

from .image_method import DEFAULT_IMAGE_SIZE, ImageMethodConfig, ImageMethodModel
from ..nn.backbone import pooled_features
from ..nn.heads import reset_batch_norm
from ..nn.momentum import ema_update


@strict
class JointEmbeddingConfig(ImageMethodConfig):
    r"""
    gather_distributed (`bool`, defaults to `True`): losses that compare samples across the batch use the
        embeddings of all processes (the paper's global batch), gathered with gradient.
    initializer_range (`float`, defaults to 0.01): std of the normal init of the heads' linear layers.
    """

    gather_distributed: bool = True
    initializer_range: float = 0.01

    def validate_initializer_range(self):
        if not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be > 0, got {self.initializer_range}")

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # One source of truth for the resolution: the backbone config (ViT needs it there for its position
        # embeddings; for conv backbones it is an extra attribute that round-trips through config.json).
        if getattr(self.backbone_config, "image_size", None) is None:
            self.backbone_config.image_size = DEFAULT_IMAGE_SIZE


@strict
class TwoViewAugmentationConfig(JointEmbeddingConfig):
    r"""
    The augmentation fields of the two-view methods (SimCLR, SimSiam, BYOL, VICReg, Barlow Twins, MoCo), declared
    once. Each view is a random resized crop + flip, then colour distortion; the defaults are SimCLR's pipeline
    (Chen et al. 2020, Appendix A).

    crop_min_scale (`float`, defaults to 0.08): smallest area of the random resized crop of both views.
    jitter_strength (`float`, defaults to 1.0): s of the colour jitter, brightness/contrast/saturation 0.8 s and
        hue 0.2 s, applied with p = 0.8 (Appendix A; s = 0.5 is MoCo v2's 0.4/0.4/0.4/0.1).
    blur_probability (`float`, defaults to 0.5): Gaussian blur (sigma 0.1-2) probability (SimCLR uses 0 on
        CIFAR-10).
    grayscale_probability (`float`, defaults to 0.2): random grayscale probability.

    A method has the fields named in its `augmentation_fields` (all four by default; BYOL's fixed asymmetric
    pipelines expose only `crop_min_scale`). They become fields of the method's own config class, declared after
    the fields it declares itself, so its `--help` flags, card hyperparameters and `to_dict()` keep the order
    they had when each method declared them (fields inherited from a base class would come first). A method whose
    paper has another default redeclares that field in its class body (with a comment citing the paper); the
    declaration then stays where the method puts it.
    """

    # The declarations: name -> (type, default). Not annotations, so that they are no field of this base class.
    _augmentation_field_specs = {
        "crop_min_scale": (float, 0.08),
        "jitter_strength": (float, 1.0),
        "blur_probability": (float, 0.5),
        "grayscale_probability": (float, 0.2),
    }
    augmentation_fields = tuple(_augmentation_field_specs)

    def __init_subclass__(cls, **kwargs):
        # Runs before PretrainedConfig.__init_subclass__ makes `cls` a dataclass: add the missing augmentation
        # fields to its own annotations, after the ones its body declares.
        annotations = cls.__dict__.get("__annotations__")
        if annotations is None:
            annotations = {}
            cls.__annotations__ = annotations
        inherited = getattr(cls, "__dataclass_fields__", {})  # a subclass of a method config has them already
        for name in cls.augmentation_fields:
            if name not in annotations and name not in inherited:
                annotations[name], default = TwoViewAugmentationConfig._augmentation_field_specs[name]
                setattr(cls, name, default)
        super().__init_subclass__(**kwargs)

    def validate_two_view_augmentation(self):
        # crop_min_scale is checked by ImageMethodConfig.validate_crop_scale, as for every method's crop
        if "jitter_strength" in self.augmentation_fields and self.jitter_strength < 0:
            raise ValueError(f"jitter_strength must be >= 0, got {self.jitter_strength}")
        for name in ("blur_probability", "grayscale_probability"):
            if name in self.augmentation_fields and not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


NUM_GLOBAL_CROPS = 2


@strict
class MultiCropConfig(JointEmbeddingConfig):
    r"""
    Multi-crop (SwAV, Caron et al. 2020, Sec. 3.2; DINO): 2 global crops at the backbone's `image_size` plus
    `num_local_crops` low-resolution crops of `local_crop_size`.

    num_local_crops (`int`): local crops per image besides the 2 global ones; 0 = the two global crops only.
    local_crop_size (`int`): side of the local crops in pixels (smaller than the global size; whole patches).
    global_crop_min_scale, global_crop_max_scale (`float`): area range of the global random resized crops.
    local_crop_min_scale, local_crop_max_scale (`float`): area range of the local crops.
    """

    num_local_crops: int = 6
    local_crop_size: int = 96
    global_crop_min_scale: float = 0.14
    global_crop_max_scale: float = 1.0
    local_crop_min_scale: float = 0.05
    local_crop_max_scale: float = 0.14

    def validate_multi_crop(self):
        # Local crops smaller than the global ones (the collator tells the two groups apart by size), whole
        # patches for ViTs, crop scales 0 < min <= max <= 1.
        size, patch = self.local_crop_size, self.patch_size
        if self.num_local_crops < 0:
            raise ValueError(f"num_local_crops must be >= 0, got {self.num_local_crops}")
        if size < 1:
            raise ValueError(f"local_crop_size must be >= 1, got {size}")
        if self.num_local_crops > 0:
            if size >= self.image_size:
                raise ValueError(f"local_crop_size must be smaller than the global crop size (image_size "
                                 f"{self.image_size}), got {size}")
            if size < patch or size % patch:
                raise ValueError(f"local_crop_size {size} must be a multiple of patch_size {patch}")
        for group in ("global", "local"):
            low, high = getattr(self, f"{group}_crop_min_scale"), getattr(self, f"{group}_crop_max_scale")
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"{group}_crop_min_scale and {group}_crop_max_scale must satisfy "
                                 f"0 < min <= max <= 1, got {low} and {high}")


class JointEmbeddingModel(ImageMethodModel):
    """Base of the joint-embedding models: `self.backbone` (exported) plus heads owned by the subclass.

    `last_embeddings` (a detached (N, D) tensor a forward stores) feeds `CollapseMonitorCallback`.
    """

    # The papers' ViT runs (MoCo v3, DINO) put the heads on the [CLS] token.
    feature_pooling = "cls"

    def _init_weights(self, module: nn.Module) -> None:
        # Only the heads are this class's own; the backbone is initialised by its own class.
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm1d):
            reset_batch_norm(module)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(momentum copy, online module) pairs that `ema_update` moves together: MoCo's key encoder and head,
        BYOL's target, DINO's teacher. Methods without momentum encoders have none."""
        return []

    def freeze_untrained_parts(self) -> None:
        """`requires_grad=False` on what the optimizer must not touch: the momentum copies (moved only by the
        EMA). Methods with other fixed parts (MoCo v3's random patch projection) extend it."""
        for target, _ in self.momentum_pairs():
            target.requires_grad_(False)

    def post_init(self):
        super().post_init()
        # post_init initialises the momentum copies independently of the online modules: they must start equal.
        self.reset_momentum_encoders()
        self.freeze_untrained_parts()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # transformers 5.23 loads every floating-point weight as a new Parameter with requires_grad=True
        # (`core_model_loading.set_param_for_module`), which would unfreeze the momentum copies: Trainer would
        # hand them to the optimizer, and DDP without find_unused_parameters would wait for their gradients.
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).freeze_untrained_parts()
        return loaded

    @torch.no_grad()
    def reset_momentum_encoders(self) -> None:
        """Make every momentum copy equal to its online module (BYOL, MoCo and DINO start that way); called
        after the online backbone's weights change outside training (`load_encoder_weights`)."""
        for target, online in self.momentum_pairs():
            ema_update(target, online, momentum=0.0)

    def load_encoder_weights(self, checkpoint: str) -> None:
        super().load_encoder_weights(checkpoint)
        self.reset_momentum_encoders()

    def encode(self, pixel_values: torch.Tensor, backbone: nn.Module | None = None) -> torch.Tensor:
        """(N, C, H, W) -> (N, D) representations, pooled by `feature_pooling` for token backbones, the backbone's
        own pooler otherwise.
        `backbone` defaults to the online one; pass a momentum copy (MoCo's key encoder, a teacher) to use it.
        Any input size works (multi-crop's local crops): ViTs interpolate their position embeddings."""
        return pooled_features(self.backbone if backbone is None else backbone, pixel_values, self.feature_pooling)

    def stack_views(self, pixel_values: torch.Tensor, num_views: int | None = None) -> torch.Tensor:
        """(B, V, C, H, W) -> (V * B, C, H, W), view-major: all first views, then all second views, ..., so that
        one backbone call sees every view (BatchNorm normalises over all of them, as with one device's global
        BN) and `.chunk(V)` gives the outputs back per view. Checks the number of views when given."""
        if pixel_values.dim() != 5 or (num_views is not None and pixel_values.shape[1] != num_views):
            views = "several views" if num_views is None else f"{num_views} views"
            raise ValueError(
                f"{type(self).__name__} expects {views} per image, pixel_values of shape (B, V, C, H, W); "
                f"got {tuple(pixel_values.shape)}"
            )
        return pixel_values.transpose(0, 1).flatten(0, 1)

    def project_views(self, pixel_values: torch.Tensor, num_views: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V, C, H, W) -> (features, projections), each (V * B, ...) view-major: every view through the
        backbone (one call) and `self.projector`. The projections, detached, become `last_embeddings` for the
        collapse monitor."""
        features = self.encode(self.stack_views(pixel_values, num_views))
        projections = self.projector(features)
        self.last_embeddings = projections.detach()
        return features, projections

    def encode_multi_crop(
        self, pixel_values: torch.Tensor, local_pixel_values: torch.Tensor | None = None,
        backbone: nn.Module | None = None,
    ) -> tuple[torch.Tensor, int]:
        """The 2 global crops (B, 2, C, H, W) and the optional local crops (B, V_local, C, h, w) -> ((V * B, D)
        features, view-major with the global crops first, and V). The backbone runs once per resolution group,
        as the reference `MultiCropWrapper` does."""
        groups = [self.stack_views(pixel_values, NUM_GLOBAL_CROPS)]
        if local_pixel_values is not None:
            groups.append(self.stack_views(local_pixel_values))
        features = torch.cat([self.encode(group, backbone) for group in groups])
        return features, features.shape[0] // pixel_values.shape[0]


def per_image(tensor: torch.Tensor, num_views: int) -> torch.Tensor:
    """(V * B, ...) view-major -> (B, V, ...), the layout of a method's output fields."""
    return tensor.unflatten(0, (num_views, -1)).transpose(0, 1)


__all__ = [
    "NUM_GLOBAL_CROPS", "JointEmbeddingConfig", "JointEmbeddingModel", "MultiCropConfig", "TwoViewAugmentationConfig",
    "per_image",
]
