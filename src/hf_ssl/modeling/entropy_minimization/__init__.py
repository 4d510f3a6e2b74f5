"""Entropy minimisation (Grandvalet & Bengio, NeurIPS 2004)."""

from ...data.collators import semi_supervised_collator
from ...registry import Method, Preset
from ..presets import SEMI_SUPERVISED_BACKBONES, SEMI_SUPERVISED_OPTIMIZER, semi_supervised_presets
from .configuration_entropy_minimization import EntropyMinimizationConfig
from .modeling_entropy_minimization import EntropyMinimizationModel

PRESETS = {name: Preset(**preset) for name, preset in semi_supervised_presets().items()}

METHOD = Method(
    name="entropy_minimization",
    summary="entropy minimisation: cross-entropy on the labels plus lambda times the entropy of the predictions "
            "on unlabelled images",
    paper="Grandvalet, Bengio, Semi-supervised Learning by Entropy Minimization, NeurIPS 2004",
    config_class=EntropyMinimizationConfig,
    model_class=EntropyMinimizationModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=semi_supervised_collator,  # weak views of B labelled + mu B unlabelled images
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "entropy-minimization"),
    display_name="Entropy minimisation",
    limitations=(
        "The paper's experiments are logistic regression on small data; here the criterion is applied to a deep "
        "classifier with mini-batches of unlabelled images. lambda (0.1) is not the paper's (it tunes lambda by "
        "cross-validation). A deep network can minimise the entropy by becoming confidently wrong on unlabelled "
        f"images; with few labels keep lambda small. Trained with {SEMI_SUPERVISED_OPTIMIZER}. "
        f"{SEMI_SUPERVISED_BACKBONES}."
    ),
)

__all__ = ["METHOD", "EntropyMinimizationConfig", "EntropyMinimizationModel"]
