"""Pseudo-Label (Lee, ICML 2013 workshop)."""

from ...data.collators import semi_supervised_collator
from ...registry import Method, Preset
from ..presets import SEMI_SUPERVISED_BACKBONES, SEMI_SUPERVISED_OPTIMIZER, semi_supervised_presets
from .configuration_pseudo_label import PseudoLabelConfig
from .modeling_pseudo_label import PseudoLabelModel

PRESETS = {name: Preset(**preset) for name, preset in semi_supervised_presets().items()}

METHOD = Method(
    name="pseudo_label",
    summary="Pseudo-Label: train on the unlabelled images with the current model's confident argmax as their "
            "label, the weight ramped up",
    paper=("Lee, Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method for Deep Neural Networks, "
           "ICML 2013 Workshop on Challenges in Representation Learning"),
    config_class=PseudoLabelConfig,
    model_class=PseudoLabelModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=semi_supervised_collator,  # weak views of B labelled + mu B unlabelled images
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "pseudo-labeling", "self-training"),
    display_name="Pseudo-Label",
    limitations=(
        "USB's variant: a confidence threshold of 0.95 (Lee's original uses every prediction: --threshold 0) and a "
        "ramp-up over the first 40% of training instead of Lee's epochs 100-600; Lee's network was an MLP with "
        f"dropout, pretrained as a denoising autoencoder in one of his settings, not done here. Trained with "
        f"{SEMI_SUPERVISED_OPTIMIZER}. {SEMI_SUPERVISED_BACKBONES}. Pseudo-labels confirm the model's own "
        "mistakes (confirmation bias): with very few labels it often ends close to the supervised baseline."
    ),
)

__all__ = ["METHOD", "PseudoLabelConfig", "PseudoLabelModel"]
