"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017)."""

from __future__ import annotations

import torch

from ...data.collators import SemiSupervisedCollator, semi_supervised_collator
from ...data.transforms import flip_and_shift
from ...registry import Method, Preset
from ..presets import SEMI_SUPERVISED_BACKBONES, SEMI_SUPERVISED_OPTIMIZER, semi_supervised_presets
from .configuration_mean_teacher import MeanTeacherConfig
from .modeling_mean_teacher import MeanTeacherModel


class MeanTeacherCollator:
    """The semi-supervised collator (weak views: B labelled, 2 x mu B unlabelled), plus, when
    `config.consistency_on_labeled`, a second independent weak view of the labelled images as
    `teacher_labeled_pixels` (B, C, H, W): the reference applies the consistency to every image of its minibatch,
    labelled or not, each seen by the student and the teacher under different noise."""

    def __init__(self, config: MeanTeacherConfig):
        self.collate: SemiSupervisedCollator = semi_supervised_collator(config)
        self.second_labeled_view = None
        if config.consistency_on_labeled:
            self.second_labeled_view = SemiSupervisedCollator(
                config.image_mean, config.image_std,
                flip_and_shift(config.image_size, config.horizontal_flip, config.max_translation))

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.collate(examples)
        if self.second_labeled_view is not None:
            labeled_only = [{"labeled_pixels": e["labeled_pixels"], "labels": e["labels"]} for e in examples]
            batch["teacher_labeled_pixels"] = self.second_labeled_view(labeled_only)["labeled_pixels"]
        return batch


def mean_teacher_collator(config: MeanTeacherConfig) -> MeanTeacherCollator:
    return MeanTeacherCollator(config)


def _presets() -> dict[str, Preset]:
    presets = semi_supervised_presets()
    # small: 16 labelled + 112 unlabelled images per step, each seen twice (student and teacher): about a second a
    # step for ResNet-18 at 32 px on a laptop-class CPU, like FixMatch's small preset (the same batch for both)
    presets["small"]["training"] = {**presets["small"]["training"], "per_device_train_batch_size": 16}
    presets["small"]["description"] = (presets["small"]["description"]
                                       .replace("64 labelled images per step", "16 labelled + 112 unlabelled images "
                                                "per step (two weak views each)"))
    return {name: Preset(**preset) for name, preset in presets.items()}


PRESETS = _presets()

METHOD = Method(
    name="mean_teacher",
    summary="Mean Teacher: a consistency cost between the student's softmax and an EMA teacher's on another weak "
            "view, the weight ramped up along a sigmoid; the teacher is published",
    paper=("Tarvainen, Valpola, Mean teachers are better role models: Weight-averaged consistency targets improve "
           "semi-supervised deep learning results, NeurIPS 2017"),
    config_class=MeanTeacherConfig,
    model_class=MeanTeacherModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=mean_teacher_collator,  # two weak views of every image (labelled ones: teacher_labeled_pixels)
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "consistency-regularization", "mean-teacher", "ema"),
    display_name="Mean Teacher",
    limitations=(
        "The published classifier is the EMA teacher, not the student: the paper reports the EMA model as the better "
        "one; the student is in `ssl/`. The consistency cost (weight 100, averaged over classes, sigmoid ramp-up "
        "over the first 4/15 of training, EMA decay 0.99 then 0.999) follows the paper's CIFAR-10 setting and the "
        "reference code, including the consistency on the labelled images; the supervised loss is the mean over the "
        "labelled images (the reference divides their summed loss by the whole minibatch). The noise is the weak "
        "augmentation only: no input Gaussian noise or dropout (the paper's ConvNet had both; transformers' ResNets "
        "have no dropout). Batches hold 7 unlabelled images per labelled one (USB's ratio; the reference: 31 "
        f"labelled of 128). Trained with {SEMI_SUPERVISED_OPTIMIZER}; the paper's ConvNet used Adam with its own "
        f"learning-rate ramps and a beta2 switch, not reproduced. {SEMI_SUPERVISED_BACKBONES}."
    ),
)

__all__ = ["METHOD", "MeanTeacherCollator", "MeanTeacherConfig", "MeanTeacherModel", "mean_teacher_collator"]
