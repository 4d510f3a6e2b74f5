"""The method registry: what `hf-ssl list` shows and `--method NAME` resolves.

A method is one folder under `modeling/` that exports a :class:`Method`. Registering it makes its
config and model known to the transformers Auto classes, so `AutoModel.from_pretrained(OUT/ssl)` works
in this process. In a process that never imported hf_ssl, `trust_remote_code=True` loads the code that the
export writes next to the weights (`hub.remote_code`; not transformers' `register_for_auto_class`, whose
copy of the code keeps hf_ssl's imports).
The training code only ever talks to a :class:`Method`; it never branches on a method's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, PretrainedConfig, PreTrainedModel

from .errors import HfSslError


@dataclass(frozen=True)
class Preset:
    """A named size of a method: config fields (plus `backbone`, a spec for `backbone_config_from_spec`,
    and `backbone_overrides` for its config) and the recommended `TrainingArguments` defaults."""

    description: str
    config: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    # Whether bf16 autocast is the default on a CPU with native bf16 (`bf16_by_default`), where it was measured for
    # this preset's geometry: convolutions on 32 px images gain from it, on 8 px tiles they lose. None: the
    # backbone's rule (yes for transformer backbones).
    cpu_bf16: bool | None = None


@dataclass(frozen=True)
class ReferenceTraining:
    """What a reference implementation that trains end to end (`Method.reference_training`) reports."""

    name: str        # "gensim Word2Vec (workers=2)"
    seconds: float   # its training time (vocabulary building and other setup excluded)
    units: int       # what it trained on, in `unit`s: word2vec's in-vocabulary corpus words x epochs
    unit: str        # "words"


@dataclass(frozen=True)
class Method:
    name: str
    summary: str                       # one line for `hf-ssl list` and model cards
    paper: str                         # citation for model cards
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    modality: str                      # "image" (text methods add "text")
    presets: dict[str, Preset]
    default_preset: str
    # config -> callable(list of examples) -> batch dict; the method's data pipeline (augmentation, views, masks).
    make_collator: Callable[[PretrainedConfig], Callable]
    display_name: str = ""             # "MAE"; defaults to the name
    limitations: str = ""              # method-specific caveats for model cards
    auto_classes: tuple[str, ...] = ("AutoModel", "AutoModelForPreTraining")
    tags: tuple[str, ...] = ()
    # `hf-ssl pretrain` flags whose value is the output folder of another method's run, flag -> that method
    # (BEiT: {"tokenizer": "visual_tokenizer"}); the contract test trains those first.
    prerequisites: dict[str, str] = field(default_factory=dict)
    # an independent implementation of the same objective, built with the same weights (`hf-ssl benchmark
    # --reference` times it beside the method: MAE's is transformers' ViTMAEForPreTraining); called with the method's
    # model, returns a module whose forward takes the method's batch and returns an output with `.loss`
    reference_model: Callable[[PreTrainedModel], torch.nn.Module] | None = None
    # an independent implementation that trains end to end, for a method whose reference has no step to time on the
    # method's batch (word2vec's: gensim's Word2Vec, a C loop over the corpus): called with the method's config (its
    # data-dependent fields set), the modality's loaded dataset, the epochs and the reference's threads, it trains on
    # the dataset's training split with the config's hyperparameters; `hf-ssl benchmark --reference` trains the
    # method (`hf-ssl pretrain`) for the same epochs on the same data and compares the two training times
    reference_training: Callable[[PretrainedConfig, Any, int, int], ReferenceTraining] | None = None


METHODS: dict[str, Method] = {}

_AUTO_CLASSES = {"AutoModel": AutoModel, "AutoModelForPreTraining": AutoModelForPreTraining}


def register_method(method: Method) -> Method:
    """Add a method to the registry and to the transformers Auto classes (idempotent)."""
    if not method.display_name:
        object.__setattr__(method, "display_name", method.name)
    if method.name in METHODS:
        return METHODS[method.name]
    model_type = method.config_class.model_type
    AutoConfig.register(model_type, method.config_class, exist_ok=True)
    for auto_name in method.auto_classes:
        _AUTO_CLASSES[auto_name].register(method.config_class, method.model_class, exist_ok=True)
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise HfSslError(f"unknown method '{name}' (available: {', '.join(sorted(METHODS))})") from None
