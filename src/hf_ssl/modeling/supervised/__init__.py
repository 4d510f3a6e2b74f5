"""The supervised baseline of the semi-supervised methods: the labelled subset only."""

from ...data.collators import semi_supervised_collator
from ...registry import Method, Preset
from ..presets import SEMI_SUPERVISED_BACKBONES, SEMI_SUPERVISED_OPTIMIZER, semi_supervised_presets
from .configuration_supervised import SupervisedConfig
from .modeling_supervised import SupervisedModel

PRESETS = {name: Preset(**preset) for name, preset in semi_supervised_presets(unlabeled_ratio=0).items()}

METHOD = Method(
    name="supervised",
    summary="the supervised baseline: cross-entropy on the labelled subset only, the row every semi-supervised "
            "table compares with",
    paper=("Oliver, Odena, Raffel, Cubuk, Goodfellow, Realistic Evaluation of Deep Semi-Supervised Learning "
           "Algorithms, NeurIPS 2018 (arXiv:1804.09170): the fully supervised baseline with the same model and budget"),
    config_class=SupervisedConfig,
    model_class=SupervisedModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=semi_supervised_collator,  # weak augmentation of the labelled images, no unlabelled ones
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "baseline"),
    display_name="Supervised baseline",
    limitations=(f"Uses no unlabelled data, by design. Trained with {SEMI_SUPERVISED_OPTIMIZER}. "
                 f"{SEMI_SUPERVISED_BACKBONES}."),
)

__all__ = ["METHOD", "SupervisedConfig", "SupervisedModel"]
