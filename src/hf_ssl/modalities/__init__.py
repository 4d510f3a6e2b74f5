"""Modalities: everything hf-ssl knows about a kind of data, in both directions.

A method names its modality (`Method.modality`: image, image-classification (semi-supervised classifiers), image-text,
text, words). The modality owns
- **pretraining**: loading the data (`load_dataset`), turning it into a training dataset with the processor exported
  next to the model (`prepare`, which trains a tokenizer first where the method needs one), checking the written
  folder (`verify_export`), its plots and the data-specific lines of the model card, and what `--eval_steps` scores
  during training (`online_protocol`, `online_evaluation`; image encoders: kNN and RankMe on held-out images);
- **evaluation of an exported folder** (`evaluate`): the protocols of this kind of model (kNN, linear probe, zero-shot,
  fill-mask, word similarity, ...), on the folder as users load it with plain transformers. `hf-ssl pretrain`
  evaluates the folder it has just written through the same call; `hf-ssl evaluate --model OUT` finds the modality
  with `modality_of_folder`: the one recorded in `OUT/ssl/training_info.json`, or for a folder hf-ssl did not make,
  the one modality that `recognizes` its config.

Modalities take typed inputs (`DataSpec`, `StartingPoint`, `EvaluationSpec`), never the command line's argument bag,
and they import nothing from `training/` or the CLI. The loop never looks at a method's or a modality's name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import Dataset
from transformers import PretrainedConfig, TrainerCallback

from ..embeddings import EmbeddingBatch
from ..errors import HfSslError, first_line
from ..evaluation.finetune import FinetuneSettings
from ..evaluation.few_shot import DEFAULT_EPISODES, DEFAULT_SHOTS
from ..evaluation.online import OnlineEvaluation
from ..hub.card import RUN_INFO_FILE
from ..modeling.method_model import SSL_SUBDIR, MethodModel


@dataclass(frozen=True)
class DataSpec:
    """Which data, as the user named it: `--dataset` (None: the modality's default) and its column flags."""

    dataset: str | None = None
    data_dir: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    text_column: str | None = None
    streaming: bool = False  # read the dataset as it is iterated (`datasets`' streaming), never downloaded whole


@dataclass(frozen=True)
class StartingPoint:
    """What a run starts from besides its data: a tokenizer (`--tokenizer`) and the checkpoint whose weights the model
    starts from (`--backbone CHECKPOINT`; None: random initialisation)."""

    tokenizer: str | None = None
    checkpoint: str | None = None


@dataclass(frozen=True)
class EvaluationSpec:
    """How to evaluate: the protocols and their settings (`hf-ssl evaluate` flags, or what `pretrain` runs)."""

    protocols: tuple[str, ...]
    data: DataSpec = DataSpec()
    k: int = 20  # kNN neighbours
    temperature: float | None = 0.07  # kNN vote temperature (None: majority vote)
    pooling: str | None = None  # token backbones: "cls" | "mean" | "auto"; None: the pooling the model was trained with
    baselines: bool = False  # image encoders: the frozen-feature protocols on raw pixels and a random-init twin too
    batch_size: int = 256
    shots: int = DEFAULT_SHOTS
    episodes: int = DEFAULT_EPISODES
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    pairs: str | None = None  # word similarity: a word1,word2,score file (default: gensim's WordSim-353)
    questions: str | None = None  # analogies: a Google-analogy file (default: gensim's)


@dataclass
class PreparedData:
    """What a modality hands the training loop."""

    train_dataset: Dataset
    processor: Any  # saved next to the exported model: an image processor, a tokenizer or a multimodal processor
    # split -> its images already decoded at the model's size (uint8), reused by the evaluation after training
    images: dict[str, torch.Tensor] = field(default_factory=dict)
    # every example is a dict of tensors of one shape (images at the model's size): a batch of them can be stacked and
    # collated on the training device (`--augment_on_device`)
    examples_stack: bool = False
    # DataLoader workers for `--dataloader_num_workers auto` (the CLI's default); None: the training loop's rule
    # (`loader_workers`: every core but the step's). Data whose batches cost little next to the step says 0: a
    # worker process then only takes cores from the step's threads
    loader_workers: int | None = None
    # Trainer callbacks the data needs (the semi-supervised monitor, which alone holds the hidden labels); the loop
    # adds them to Trainer after its own
    callbacks: list[TrainerCallback] = field(default_factory=list)
    # facts about the training data for the run record (OUT/ssl/training_info.json) and the card: the labelled example
    # ids of a semi-supervised run, how many there are; merged into the record last, so they override its generic
    # entries of the same name (num_train_images: the images, not the dataset's items)
    record: dict[str, Any] = field(default_factory=dict)


class Modality:
    """Base class; see the module docstring. `name` is what `Method.modality` says."""

    name: str = ""
    model_description: str = "a model"  # in messages: "unknown protocol 'x' for an image encoder"
    protocols: tuple[str, ...] = ()  # what `--eval_protocols` / `--protocol` may name
    default_protocols: tuple[str, ...] = ()  # what `--eval_protocols auto` runs
    online_protocol: str | None = None  # what `--eval_steps` runs during training (`online_evaluation`); None: nothing
    card_template: str = "encoder.md.j2"
    pipeline_tag: str = "feature-extraction"
    task_type: str = "image-classification"  # the model-index task of the evaluation results
    default_dataset: str = "digits"  # what `--dataset` means when not given
    streams: bool = False  # `prepare` trains on a streamed dataset (`--streaming`)

    # --- both directions -------------------------------------------------------------------------------------

    def load_dataset(self, data: DataSpec) -> Any:
        raise NotImplementedError

    def check_protocols(self, protocols: Sequence[str], config: PretrainedConfig | None = None) -> None:
        """Raise `HfSslError` for a protocol this kind of model has not (the one check of protocol names; `config`,
        when known, narrows it to the model: fill-mask for masked LMs, perplexity for causal ones)."""
        unknown = [p for p in protocols if p not in self.protocols]
        if unknown:
            raise HfSslError(f"unknown protocol '{unknown[0]}' for {self.model_description} "
                             f"(available: {', '.join(self.protocols)})")

    # --- pretraining -----------------------------------------------------------------------------------------

    def resolve_protocols(self, requested: list[str] | None, dataset: Any, config: PretrainedConfig) -> list[str]:
        """The protocols to run after training: `requested` (None: this modality's usual ones), checked against the
        model and what the dataset supports, so that a run that cannot be evaluated fails before training."""
        if requested is None:
            return list(self.default_protocols)
        self.check_protocols(requested, config)
        return requested

    def prepare(self, config: PretrainedConfig, dataset: Any, start: StartingPoint, work_dir: str) -> PreparedData:
        """Build the training dataset. May set data-dependent config fields (a trained tokenizer's vocabulary
        size) before the model is built; `work_dir` persists between runs, so a resumed run reuses what the first
        run derived from the data (a tokenizer must not change under a checkpoint)."""
        raise NotImplementedError

    def online_evaluation(self, config: PretrainedConfig, dataset: Any, prepared: PreparedData,
                          spec: EvaluationSpec) -> OnlineEvaluation:
        """What `--eval_steps` runs during training (`evaluation.online`): held-out data and `online_protocol`
        scoring the model as it trains. Called only where `online_protocol` is set and `resolve_protocols` accepted
        it for the dataset."""
        raise NotImplementedError

    def verify_export(self, out_dir: Path, config: PretrainedConfig, dataset: Any) -> None:
        """Check the written folder for mistakes that would load without error but give wrong results."""

    def plots(self, model: MethodModel, config: PretrainedConfig, dataset: Any, prepared: PreparedData,
              plots_dir: Path) -> None:
        """Draw this modality's plots of the trained model into `plots_dir` (`hub.plots`; matplotlib is there when
        this is called). The training-loss curve is drawn by the loop for every method; default: nothing more."""

    def card_tags(self, config: PretrainedConfig) -> dict[str, str]:
        """The card's `pipeline_tag` and model-index `task_type`; a modality whose methods serve different pipelines
        (fill-mask, text-generation) takes them from the method's config."""
        return {"pipeline_tag": self.pipeline_tag, "task_type": self.task_type}

    def card_fields(self, model: MethodModel, config: PretrainedConfig, dataset: Any,
                    start: StartingPoint) -> dict[str, Any]:
        """The data- and model-specific values of the card template."""
        return {}

    # --- features of an exported folder (`hf-ssl embed`) -------------------------------------------------------

    def embeddings(self, model_dir: str | os.PathLike, data: DataSpec, splits: Sequence[str] | None,
                   pooling: str | None = None, batch_size: int = 256) -> tuple[int, Iterator[EmbeddingBatch]]:
        """The exported model's features of every example of `splits` (None: all) of the dataset, as its evaluation
        computes them: (the number of examples, an iterator of `EmbeddingBatch`es in dataset order), decoded and
        encoded one chunk at a time."""
        raise HfSslError(f"hf-ssl embed does not support {self.model_description} yet (image encoders only)")

    # --- evaluation of an exported folder --------------------------------------------------------------------

    def recognizes(self, config: PretrainedConfig) -> bool:
        """True when a folder hf-ssl did not make (its config) holds this modality's kind of model."""
        return False

    def evaluation_dataset(self, spec: EvaluationSpec) -> str | None:
        """The dataset to evaluate on when `--dataset` is not given."""
        return self.default_dataset

    def evaluate(self, model_dir: str | os.PathLike, spec: EvaluationSpec, dataset: Any = None,
                 images: dict[str, torch.Tensor] | None = None) -> dict[str, dict[str, Any]]:
        """`{protocol: {"protocol", "dataset", "split", "value", "params"}}` for the model in `model_dir` (a folder
        or Hub id), loaded as users load it. `dataset` (default: loaded from `spec.data`) and `images` (decoded splits)
        are what a pretraining run already has in memory."""
        raise NotImplementedError


MODALITIES: dict[str, Modality] = {}


def register_modality(modality: Modality) -> Modality:
    MODALITIES[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    try:
        return MODALITIES[name]
    except KeyError:
        raise HfSslError(f"unknown modality '{name}' (available: {', '.join(MODALITIES)})") from None


def read_run_info(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The run record hf-ssl writes in `OUT/ssl` ({} for a folder hf-ssl did not make, or a Hub id)."""
    path = Path(model_dir) / SSL_SUBDIR / RUN_INFO_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def modality_of_folder(model_dir: str | os.PathLike) -> Modality:
    """The modality of an exported model: the one its run recorded, else the one that recognizes its config (a file
    is a word2vec text file)."""
    recorded = read_run_info(model_dir).get("modality")
    if recorded:
        return get_modality(recorded)
    if os.path.isfile(model_dir):
        return get_modality("words")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load a model from {model_dir}: {first_line(e)}") from None
    recognized = [modality for modality in MODALITIES.values() if modality.recognizes(config)]
    if len(recognized) == 1:
        return recognized[0]
    raise HfSslError(f"{model_dir} holds a {config.model_type} model, which "
                     + (f"several modalities claim ({', '.join(m.name for m in recognized)})" if recognized
                        else "no hf-ssl evaluation applies to"))


def is_image_classifier(config: PretrainedConfig) -> bool:
    """True when a config's `architectures` names a `*ForImageClassification` class: a classifier (the
    image-classification modality's export), not a bare encoder, although both have an image config."""
    return any(name.endswith("ForImageClassification") for name in config.architectures or ())


from . import image, image_classification, image_text, text, word_vectors  # noqa: E402,F401  (each registers itself)
