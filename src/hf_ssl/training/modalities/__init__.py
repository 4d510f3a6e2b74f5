"""Modalities: what `hf-ssl pretrain` needs to know about a kind of training data.

A method names its modality (`Method.modality`); the pretraining loop asks the modality to load the data,
turn it into a training dataset (training a tokenizer first where the method needs one), give the processor
that is exported next to the model, evaluate the exported model, and fill the data-specific lines of the
model card. The loop itself never looks at a method's or a modality's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset
from transformers import PretrainedConfig, PreTrainedModel

from ...errors import HfSslError

if TYPE_CHECKING:
    from ..pretrain import PretrainArguments


@dataclass
class PreparedData:
    """What a modality hands the training loop."""

    train_dataset: Dataset
    processor: Any  # saved next to the exported model: an image processor, a tokenizer or a multimodal processor
    # split -> its images already decoded at the model's size (uint8), for the evaluation after training
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    # the exported folder (OUT), set by the loop once written: protocols that load the model as users do (finetune)
    export_dir: Path | None = None


class Modality:
    """Base class; see the module docstring. `name` is what `Method.modality` says."""

    name: str = ""
    protocols: tuple[str, ...] = ()  # what `--eval_protocols` may name
    default_protocols: tuple[str, ...] = ()  # what `--eval_protocols auto` runs
    card_template: str = "encoder.md.j2"
    pipeline_tag: str = "feature-extraction"
    task_type: str = "image-classification"  # the model-index task of the evaluation results
    default_dataset: str = "digits"  # what `--dataset` means when not given

    def load_dataset(self, args: PretrainArguments) -> Any:
        raise NotImplementedError

    def resolve_protocols(self, requested: list[str] | None, dataset: Any) -> list[str]:
        """The protocols to run after training: `requested` (None: this modality's usual ones), checked against what
        the dataset supports, so that a run that cannot be evaluated fails before training, not after."""
        return list(self.default_protocols) if requested is None else requested

    def prepare(self, config: PretrainedConfig, dataset: Any, args: PretrainArguments, work_dir: str) -> PreparedData:
        """Build the training dataset. May set data-dependent config fields (a trained tokenizer's vocabulary
        size) before the model is built; `work_dir` persists between runs, so a resumed run reuses what the first
        run derived from the data (a tokenizer must not change under a checkpoint)."""
        raise NotImplementedError

    def evaluate(self, model: PreTrainedModel, config: PretrainedConfig, dataset: Any, prepared: PreparedData,
                 args: PretrainArguments, protocols: list[str]) -> dict[str, dict[str, Any]]:
        """`{protocol: {"protocol", "dataset", "split", "value", "params"}}` for the exported model."""
        raise NotImplementedError

    def plots(self, model: PreTrainedModel, config: PretrainedConfig, dataset: Any, prepared: PreparedData,
              args: PretrainArguments, plots_dir: Path) -> None:
        """Draw this modality's plots of the trained model into `plots_dir` (`hub.plots`; matplotlib is there when
        this is called). The training-loss curve is drawn by the loop for every method; default: nothing more."""

    def verify_export(self, out_dir: Path, config: PretrainedConfig, dataset: Any) -> None:
        """Check the written folder for mistakes that would load without error but give wrong results."""

    def card_tags(self, config: PretrainedConfig) -> dict[str, str]:
        """The card's `pipeline_tag` and model-index `task_type`; a modality whose methods serve different pipelines
        (fill-mask, text-generation) takes them from the method's config."""
        return {"pipeline_tag": self.pipeline_tag, "task_type": self.task_type}

    def card_fields(self, model: PreTrainedModel, config: PretrainedConfig, dataset: Any,
                    args: PretrainArguments) -> dict[str, Any]:
        """The data- and model-specific values of the card template."""
        return {}


MODALITIES: dict[str, Modality] = {}


def register_modality(modality: Modality) -> Modality:
    MODALITIES[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    try:
        return MODALITIES[name]
    except KeyError:
        raise HfSslError(f"unknown modality '{name}' (available: {', '.join(MODALITIES)})") from None


from . import image, image_text, text  # noqa: E402,F401  (each registers itself; they import the base above)
from . import word_vectors  # noqa: E402,F401
