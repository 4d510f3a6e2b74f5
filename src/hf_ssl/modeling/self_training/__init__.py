"""Self-training with a teacher trained on the labels, in rounds (Scudder 1965; Yarowsky 1995; Lee 2013)."""

from ...data.collators import semi_supervised_collator
from ...registry import Method, Preset
from ..teacher_student_presets import ROUNDS_IN_ONE_RUN, ROUNDS_OPTIMIZER, rounds_presets
from .configuration_self_training import SelfTrainingConfig
from .modeling_self_training import SelfTrainingModel

PRESETS = {name: Preset(**preset) for name, preset in rounds_presets(SelfTrainingConfig.rounds + 1).items()}

METHOD = Method(
    name="self_training",
    summary="self-training: a teacher trained on the labels pseudo-labels the unlabelled images, a student trains "
            "on both and becomes the next teacher, for --rounds; --selection threshold|all|weighted|top_k",
    paper=("Scudder, Probability of error of some adaptive pattern-recognition machines, IEEE Trans. Inf. Theory "
           "1965; Yarowsky, ACL 1995; Lee, Pseudo-Label, ICML 2013 Workshop; Yalniz et al., Billion-scale "
           "semi-supervised learning for image classification, arXiv:1905.00546 (top-k per class)"),
    config_class=SelfTrainingConfig,
    model_class=SelfTrainingModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=semi_supervised_collator,  # weak views of B labelled + mu B unlabelled images
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "self-training", "pseudo-labeling", "teacher-student"),
    display_name="Self-training",
    limitations=(
        "Hard pseudo-labels of a teacher confirm its mistakes (confirmation bias): with very few labels the "
        "students often end close to the teacher. The teacher labels the weakly augmented view each batch "
        f"rather than the unlabelled set once per round (the same labels up to that augmentation). "
        f"Trained with {ROUNDS_OPTIMIZER}. {ROUNDS_IN_ONE_RUN}"
    ),
)

__all__ = ["METHOD", "SelfTrainingConfig", "SelfTrainingModel"]
