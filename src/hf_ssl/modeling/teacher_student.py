"""Teacher-student rounds inside one run: what `self_training`, `data_distillation` and `noisy_student` share.

Self-training (Scudder 1965; Yarowsky 1995), data distillation (Radosavovic et al., CVPR 2018) and Noisy Student
(Xie et al., CVPR 2020) all iterate the same loop:

    1. train a teacher on the labelled images;
    2. let the frozen teacher label the unlabelled images (pseudo-labels, some of them kept by a selection rule);
    3. train a student on the labelled + pseudo-labelled images; the student becomes the next teacher; go to 2.

Here the loop runs inside one `hf-ssl pretrain` run. Training is split by its position (`self.progress`, 0..1) into
equal phases, one per round:

    round 0           the classifier trains on the labels alone (the first teacher);
    rounds 1..R       at the round's first optimizer step (`on_optimizer_step`) the frozen `teacher` is loaded from
                      the classifier as it is then, the student is optionally re-initialised (Noisy Student), and the
                      top-k buffer forgets the old teacher; the classifier then trains on
                          loss = CE(labelled) + unlabeled_weight * l_u(student(x_u), teacher(x_u), weights)
                      with the teacher's targets computed per batch under `no_grad` on the weak (clean) view.

So `rounds` = R gives R + 1 phases. With `teacher=PATH` (an `AutoModelForImageClassification` folder, e.g. the OUT
of a `supervised` run) round 0 is skipped: the R phases are rounds 1..R, round 1 learns from that external teacher
(`external_teacher`, its own architecture: Noisy Student's student may be larger), later rounds from the student copy.

What is per method (override in the method's model): `teacher_probabilities` (the teacher's (N, C) distribution:
a softmax, data distillation's ensemble over transforms, Noisy Student's tempered softmax), `unlabeled_loss` (hard
pseudo-label cross-entropy, or the soft cross-entropy), `student_inputs` (Noisy Student's input noise).

The teachers (`teacher`, `external_teacher`) are submodules without gradient, always in eval mode (their BatchNorm
uses its running statistics and they have no dropout), saved in checkpoints and in `OUT/ssl`: a resumed run continues
its round with the same teacher. The published model is the last student (`self.classifier`).

This file imports only torch, transformers and model code: `OUT/ssl` carries it (`hub.remote_code`).
"""

from __future__ import annotations

import copy
import os

import torch
from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec

from ..errors import HfSslError, first_line
from ..losses.pseudo_label import pseudo_label_loss
from ..nn.backbone import load_backbone_weights
from ..nn.distributed import all_reduce_max
from ..nn.pseudo_labeling import SELECTION_RULES, Selection, TopKPerClassSelector, select_pseudo_labels
from .semi_supervised import SemiSupervisedConfig, SemiSupervisedModel, SemiSupervisedOutput, build_image_classifier

__all__ = ["TeacherStudentConfig", "TeacherStudentModel", "read_teacher_config"]

# progress * phases lands exactly on an integer at a boundary, up to float32 rounding of the `progress` buffer
_BOUNDARY_TOLERANCE = 1e-5


def read_teacher_config(path: str) -> PretrainedConfig:
    """The config of an `AutoModelForImageClassification` folder (or Hub id), e.g. the OUT of a `supervised` run."""
    if (os.path.isabs(path) or path.startswith(".")) and not os.path.isdir(path):
        raise ValueError(f"the teacher '{path}': no folder there")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the teacher '{path}': {first_line(error)}") from None
    if not any(name.endswith("ForImageClassification") for name in config.architectures or ()):
        raise ValueError(f"the teacher '{path}' is a {config.model_type} model ({config.architectures}), not an image "
                         "classifier: give the OUT of a `supervised` run or any AutoModelForImageClassification folder")
    return config


@strict
class TeacherStudentConfig(SemiSupervisedConfig):
    r"""
    The fields of `SemiSupervisedConfig`, and:
    rounds (`int`, defaults to 1): student rounds R; training is split into R + 1 equal phases (round 0 trains the
        first teacher on the labels), or R phases with `teacher`.
    teacher (`str`, *optional*): an `AutoModelForImageClassification` folder or Hub id (the OUT of a `supervised`
        run) used as the first teacher: round 0 is skipped. Its config is read into `teacher_config` when this
        config is created, its weights in `load_pretrained_parts`; its labels must be the dataset's class names.
    teacher_config (`PretrainedConfig`, *optional*): the external teacher's architecture (filled from `teacher`).
    reinitialize_student (`bool`, defaults to `False`): re-initialise the classifier at the start of each student
        round (Noisy Student, data distillation: a new student, not the teacher fine-tuned). With `--backbone
        CHECKPOINT` the re-initialised student starts again from that checkpoint's encoder.
    unlabeled_weight (`float`, defaults to 1.0): weight of the pseudo-label loss (every paper here: 1).
    selection (`str`, defaults to "threshold"): which pseudo-labels are used, one of `threshold` (teacher confidence
        >= `threshold`), `all`, `weighted` (by the confidence), `top_k` (the `top_k` most confident per predicted class
        over the unlabelled set); see `hf_ssl.nn.pseudo_labeling`.
    threshold (`float`, defaults to 0.95): the confidence threshold of `selection="threshold"`.
    top_k (`int`, *optional*): k of `selection="top_k"`, per class; required by that rule (no paper value transfers
        across dataset sizes: Yalniz et al. keep 16k per class of a billion images).
    """

    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet"),
        "teacher_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet", optional=True),
    }

    rounds: int = 1
    teacher: str | None = None
    teacher_config: dict | PretrainedConfig | None = None
    reinitialize_student: bool = False
    unlabeled_weight: float = 1.0
    selection: str = "threshold"
    threshold: float = 0.95
    top_k: int | None = None

    def __post_init__(self, **kwargs):
        if self.teacher is not None and self.teacher_config is None:
            self.teacher_config = read_teacher_config(self.teacher)
        super().__post_init__(**kwargs)

    @property
    def num_phases(self) -> int:
        """Equal parts of training: round 0 (unless an external teacher replaces it) and the R student rounds."""
        return self.rounds + (0 if self.teacher_config is not None else 1)

    def validate_rounds(self):
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.unlabeled_weight < 0:
            raise ValueError(f"unlabeled_weight must be >= 0, got {self.unlabeled_weight}")
        if self.selection not in SELECTION_RULES:
            raise ValueError(f"selection must be one of {', '.join(SELECTION_RULES)}, got {self.selection!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if self.selection == "top_k" and self.top_k is None:
            raise ValueError("selection top_k needs --top_k K (pseudo-labels kept per class)")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.teacher_config is not None and self.teacher_config.num_channels != self.num_channels:
            raise ValueError(f"the teacher takes {self.teacher_config.num_channels}-channel images, the student "
                             f"{self.num_channels}")


def _frozen(module: PreTrainedModel) -> PreTrainedModel:
    module.requires_grad_(False)
    return module.eval()


class TeacherStudentModel(SemiSupervisedModel):
    """Base of the rounds methods; see the module docstring."""

    config_class = TeacherStudentConfig

    def __init__(self, config: TeacherStudentConfig):
        super().__init__(config)
        external = config.teacher_config is not None
        # the student's copy, the teacher of every round after the first with an external teacher (of every round
        # without one); not built when it would never be used (an external teacher and a single round)
        self.teacher = _frozen(build_image_classifier(config)) if config.rounds > int(external) else None
        self.external_teacher = None
        if external:
            teacher_config = copy.deepcopy(config.teacher_config)
            self.external_teacher = _frozen(AutoModelForImageClassification.from_config(teacher_config))
        # `top_k` selection's buffer of the round's teacher confidences, one per unlabelled example: built here when
        # the config knows the unlabelled set's size (`hf-ssl pretrain` sets it), so that checkpoints carry it and a
        # run resumed mid-round selects exactly as the uninterrupted one; otherwise grown on first use (see
        # `_top_k_buffer`) and kept out of checkpoints, whose size would then depend on the data seen.
        self.top_k_selector: TopKPerClassSelector | None = None
        if config.selection == "top_k" and config.num_unlabeled:
            self.top_k_selector = TopKPerClassSelector(config.num_unlabeled, config.num_labels, config.top_k)
        self.encoder_checkpoint: str | None = None
        self.post_init()

    # --- the start of training -----------------------------------------------------------------------------

    def load_pretrained_parts(self) -> None:
        """Load `--teacher PATH`'s weights into `external_teacher`; its labels must be the dataset's."""
        path = self.config.teacher
        if path is None:
            return
        try:
            source = AutoModelForImageClassification.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise HfSslError(f"cannot load the teacher {path}: {first_line(error)}") from None
        theirs = [source.config.id2label[i] for i in range(len(source.config.id2label))]
        ours = [self.config.id2label[i] for i in range(len(self.config.id2label))]
        if theirs != ours:
            raise HfSslError(f"the teacher {path} predicts the classes {theirs[:5]}{'...' if len(theirs) > 5 else ''}, "
                             f"the dataset has {ours[:5]}{'...' if len(ours) > 5 else ''}: train the teacher on the "
                             "same dataset (its labels and their order must be the same)")
        self.external_teacher.load_state_dict(source.state_dict())

    def load_encoder_weights(self, checkpoint: str) -> None:
        """`--backbone CHECKPOINT` into the classifier's encoder; remembered, so that a re-initialised student starts
        from it again (`hf-ssl pretrain` calls this on a resumed run too)."""
        super().load_encoder_weights(checkpoint)
        self.encoder_checkpoint = checkpoint

    def train(self, mode: bool = True) -> TeacherStudentModel:
        """Trainer calls `model.train()`: the teachers stay in eval mode (BatchNorm's running statistics, no
        dropout), as a frozen teacher predicts."""
        super().train(mode)
        for teacher in (self.teacher, self.external_teacher):
            if teacher is not None:
                teacher.eval()
        return self

    # --- the rounds ----------------------------------------------------------------------------------------

    def round_at(self, progress: float) -> int:
        """The round trained at this position in training: 0 (the labels only) .. rounds."""
        phases = self.config.num_phases
        phase = min(int(float(progress) * phases + _BOUNDARY_TOLERANCE), phases - 1)
        return phase + (0 if self.external_teacher is None else 1)

    @property
    def current_round(self) -> int:
        return self.round_at(float(self.progress))

    def active_teacher(self, round_: int) -> PreTrainedModel:
        """Who labels the unlabelled images in student round `round_` >= 1."""
        if round_ == 1 and self.external_teacher is not None:
            return self.external_teacher
        return self.teacher

    def on_optimizer_step(self, step: int, progress: float) -> None:
        """At a round's first step: the classifier becomes the frozen teacher, the student is re-initialised if
        asked, the top-k buffer forgets the old teacher. When one step crosses several boundaries (fewer steps than
        phases) this happens once."""
        old, new = self.current_round, self.round_at(progress)
        if new <= old:
            return
        if self.active_teacher(new) is self.teacher:
            self.teacher.load_state_dict(self.classifier.state_dict())
        if self.config.reinitialize_student:
            self.reinitialize_student()
        if self.top_k_selector is not None:
            self.top_k_selector.reset()

    @torch.no_grad()
    def reinitialize_student(self) -> None:
        """A freshly initialised classifier (and `--backbone`'s encoder weights again, if one was given), copied into
        the existing parameters so the optimizer keeps them (its moments are not reset: the optimizer is Trainer's)."""
        fresh = build_image_classifier(self.config).to(self.classifier.device)
        self.classifier.load_state_dict(fresh.state_dict())
        if self.encoder_checkpoint is not None:
            load_backbone_weights(self.classifier.base_model, self.encoder_checkpoint)

    # --- per method ----------------------------------------------------------------------------------------

    def teacher_probabilities(self, teacher: PreTrainedModel, pixels: torch.Tensor) -> torch.Tensor:
        """(N, C) the teacher's class distribution on the clean unlabelled images (float32); called under no_grad."""
        return teacher(pixel_values=pixels).logits.float().softmax(dim=-1)

    def student_inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """What the student sees of (normalised) images: the weak view as it is; Noisy Student adds noise."""
        return pixels

    def unlabeled_loss(self, logits: torch.Tensor, teacher_probs: torch.Tensor, selection: Selection) -> torch.Tensor:
        """The hard pseudo-label cross-entropy sum_i w_i CE(logits_i, argmax teacher_i) / N_u."""
        return pseudo_label_loss(logits, selection.labels, selection.weights)

    # --- shared --------------------------------------------------------------------------------------------

    def select(self, teacher_probs: torch.Tensor, unlabeled_index: torch.Tensor | None) -> Selection:
        """The configured selection rule on the teacher's probabilities."""
        config = self.config
        if config.selection != "top_k":
            return select_pseudo_labels(config.selection, teacher_probs, config.threshold)
        if unlabeled_index is None:
            raise ValueError("selection top_k needs the batch's unlabeled_index")
        return select_pseudo_labels("top_k", teacher_probs, top_k=self._top_k_buffer(unlabeled_index),
                                    unlabeled_index=unlabeled_index)

    def _top_k_buffer(self, unlabeled_index: torch.Tensor) -> TopKPerClassSelector:
        """The round's selector: the one built in `__init__` when the config knows the unlabelled set's size;
        otherwise grown (doubling, the old entries kept) to hold the largest index seen so far by any process (each
        records them all); entries never seen stay empty, so a buffer larger than the set selects exactly the same."""
        if self.config.num_unlabeled:
            return self.top_k_selector
        needed = int(all_reduce_max(unlabeled_index.max())) + 1
        old = self.top_k_selector
        if old is not None and old.num_unlabeled >= needed:
            return old
        size = max(needed, 2 * old.num_unlabeled if old is not None else needed)
        grown = TopKPerClassSelector(size, self.config.num_labels, self.config.top_k).to(unlabeled_index.device)
        for name in ("confidences", "predictions"):
            if old is not None:
                getattr(grown, name)[: old.num_unlabeled] = getattr(old, name)
            grown.register_buffer(name, getattr(grown, name), persistent=False)  # see __init__
        self.top_k_selector = grown
        return grown

    def forward(self, labeled_pixels: torch.Tensor, labels: torch.Tensor, unlabeled_pixels: torch.Tensor | None = None,
                unlabeled_index: torch.Tensor | None = None, **kwargs) -> SemiSupervisedOutput:
        round_ = self.current_round
        if unlabeled_pixels is None or round_ == 0:  # the first teacher (or no unlabelled data): the labels alone
            return self.labels_only(self.student_inputs(labeled_pixels), labels, round=round_)

        clean = self.unlabeled_views(unlabeled_pixels)[0]
        with torch.no_grad():
            teacher_probs = self.teacher_probabilities(self.active_teacher(round_), clean)
        selection = self.select(teacher_probs, unlabeled_index)
        # one classifier call on both batches: BatchNorm statistics over labelled and unlabelled images together
        logits, unlabeled_logits = self.logits(
            self.student_inputs(torch.cat([labeled_pixels, clean]))).split([labeled_pixels.shape[0], clean.shape[0]])
        supervised = self.supervised_loss(logits, labels)
        unlabeled = self.unlabeled_loss(unlabeled_logits, teacher_probs, selection)
        loss = supervised + self.config.unlabeled_weight * unlabeled
        self.record_loss_terms(supervised, unlabeled, (selection.weights > 0).float().mean(), round=round_)
        self.record_pseudo_labels(unlabeled_index, selection.labels, selection.weights)
        return SemiSupervisedOutput(loss=loss, logits=logits)
