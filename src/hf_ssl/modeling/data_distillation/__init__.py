"""Data distillation (Radosavovic et al., CVPR 2018): pseudo-labels from the teacher's ensemble over transforms."""

from ...data.collators import semi_supervised_collator
from ...registry import Method, Preset
from ..teacher_student_presets import ROUNDS_IN_ONE_RUN, ROUNDS_OPTIMIZER, rounds_presets
from .configuration_data_distillation import DataDistillationConfig
from .modeling_data_distillation import DataDistillationModel

PRESETS = {name: Preset(**preset) for name, preset in rounds_presets(DataDistillationConfig.rounds + 1).items()}

METHOD = Method(
    name="data_distillation",
    summary="data distillation: a teacher trained on the labels labels the unlabelled images with its ensemble over "
            "flips and scales; a new student trains on both",
    paper=("Radosavovic, Dollar, Girshick, Gkioxari, He, Data Distillation: Towards Omni-Supervised Learning, "
           "CVPR 2018 (arXiv:1712.04440)"),
    config_class=DataDistillationConfig,
    model_class=DataDistillationModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=semi_supervised_collator,  # weak views of B labelled + mu B unlabelled images
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "self-training", "data-distillation", "teacher-student"),
    display_name="Data distillation",
    limitations=(
        "The paper distils keypoints and boxes (mapping each prediction back through the inverse transform); for "
        "class labels no inverse is needed, and its score threshold, set so an unlabelled image gets as many "
        "annotations as a labelled one, becomes a confidence threshold of 0.5 on the ensemble. The teacher runs "
        "once per transform on every unlabelled batch (6 forward passes by default) instead of once over the "
        f"unlabelled set. Trained with {ROUNDS_OPTIMIZER}. {ROUNDS_IN_ONE_RUN}"
    ),
)

__all__ = ["DataDistillationConfig", "DataDistillationModel", "METHOD"]
