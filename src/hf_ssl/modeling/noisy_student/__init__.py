"""Noisy Student (Xie et al., CVPR 2020): a noised student learns a clean teacher's soft labels, iterated."""

from ...data.collators import semi_supervised_collator
from ...registry import Method, Preset
from ..teacher_student_presets import ROUNDS_IN_ONE_RUN, ROUNDS_OPTIMIZER, rounds_presets
from .configuration_noisy_student import NoisyStudentConfig
from .modeling_noisy_student import NoisyStudentModel

PRESETS = {name: Preset(**preset) for name, preset in rounds_presets(NoisyStudentConfig.rounds + 1).items()}

METHOD = Method(
    name="noisy_student",
    summary="Noisy Student: a teacher labels clean unlabelled images (soft labels); a re-initialised student trains "
            "under RandAugment, dropout and stochastic depth and becomes the next teacher, for --rounds",
    paper=("Xie, Luong, Hovy, Le, Self-training with Noisy Student improves ImageNet classification, CVPR 2020 "
           "(arXiv:1911.04252)"),
    config_class=NoisyStudentConfig,
    model_class=NoisyStudentModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=semi_supervised_collator,  # weak views of B labelled + mu B unlabelled images
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "self-training", "noisy-student", "teacher-student"),
    display_name="Noisy Student",
    limitations=(
        "The paper grows the student (EfficientNet-B7 to L2) and trains on 300M unlabelled images; here the "
        "student has the teacher's architecture unless `--teacher OUT` gives a separately trained teacher and "
        "`--backbone` a larger student. RandAugment is FixMatch's variant (a random magnitude per op, then Cutout) "
        "instead of a fixed magnitude; transformers' ResNet and ViT have no stochastic depth (ConvNeXt, Swin do); "
        "class balancing keeps the top k per class without duplicating images of rare classes, and replaces the "
        f"confidence filter instead of adding to it. Trained with {ROUNDS_OPTIMIZER}. {ROUNDS_IN_ONE_RUN}"
    ),
)

__all__ = ["METHOD", "NoisyStudentConfig", "NoisyStudentModel"]
