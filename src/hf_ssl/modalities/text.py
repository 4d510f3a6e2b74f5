"""Text: the modality of the language-modelling methods (mlm, clm). Loads a corpus (`hf_ssl.data.text`), gets a
tokenizer (given, a checkpoint's own, or trained on the corpus and cached for resuming), packs the corpus into
fixed-length blocks (or BERT's sentence pairs with `nsp`), exports the tokenizer next to the native language model,
and evaluates on the held-out split next to a token-frequency baseline.

What differs between the methods comes from their config's class attributes: `tokenizer_kind` (which tokenizer to
train), `causal` (how blocks are framed, which protocol applies) and `pipeline_tag` (the card's task)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import datasets
from transformers import AutoConfig, PreTrainedTokenizerBase

from ..data.language_modeling import block_framing, continuation_token_table, next_sentence_pairs, pack_blocks
from ..data.text import load_text_corpus, text_corpus_name
from ..data.tokenizers import LANGUAGE_MODEL_TOKENIZER_TRAINERS, load_tokenizer, trained_or_cached_tokenizer
from ..errors import HfSslError
from ..evaluation.finetune import finetune_text_classifier
from ..evaluation.language_modeling import LANGUAGE_PROTOCOLS, evaluate_language_model, load_language_model
from ..hub.export import portable_value
from ..hub.card import describe_backbone
from . import DataSpec, EvaluationSpec, Modality, PreparedData, StartingPoint, register_modality


@dataclass
class TextCorpus:
    """A loaded corpus: `splits` has "train" and "test", each with a "text" column."""

    name: str
    splits: datasets.DatasetDict
    train_split: str = "train"
    test_split: str = "test"


def supported_protocols(config) -> list[str]:
    """The evaluation protocols that apply to a language model: fill-mask for masked LMs, perplexity for causal; for
    both, finetune (the export as a sequence classifier, on a corpus with a 'label' column; never by default)."""
    return [p for p, causal in LANGUAGE_PROTOCOLS.items() if causal == is_causal(config)] + ["finetune"]


def is_causal(config) -> bool:
    """A method's config says it (`causal`); a transformers config of a decoder-only LM says `is_decoder` or has no
    masked-LM head class (GPT-2 ...)."""
    if hasattr(config, "causal"):
        return bool(config.causal)
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return bool(getattr(config, "is_decoder", False)) or config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


class TextCorpusModality(Modality):
    """Base of the modalities that train on a text corpus (`--dataset python-docs | austen | text:GLOB | Hub id`)."""

    default_dataset = "python-docs"

    def load_dataset(self, data: DataSpec) -> TextCorpus:
        spec = data.dataset or self.default_dataset
        return TextCorpus(name=text_corpus_name(spec), splits=load_text_corpus(spec, data.data_dir, data.text_column))


class TextModality(TextCorpusModality):
    name = "text"
    model_description = "a language model"
    protocols = (*LANGUAGE_PROTOCOLS, "finetune")
    default_protocols = tuple(LANGUAGE_PROTOCOLS)  # narrowed to the model's kind by `resolve_protocols`
    card_template = "text.md.j2"
    pipeline_tag = "fill-mask"
    task_type = "fill-mask"

    def card_tags(self, config) -> dict[str, str]:
        return {"pipeline_tag": config.pipeline_tag, "task_type": config.pipeline_tag}

    def recognizes(self, config) -> bool:
        """A transformers text architecture with a masked- or causal-LM head class (BERT, GPT-2, ...)."""
        from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                            MODEL_FOR_MASKED_LM_MAPPING_NAMES)

        image_input = hasattr(config, "num_channels") or getattr(config, "vision_config", None) is not None
        language_model = (config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
                          or config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
        return language_model and not image_input

    def check_protocols(self, protocols: Sequence[str], config=None) -> None:
        super().check_protocols(protocols, config)
        if config is not None:
            allowed = supported_protocols(config)
            wrong = [p for p in protocols if p not in allowed]
            if wrong:
                kind = "causal" if is_causal(config) else "masked"
                raise HfSslError(f"cannot evaluate {wrong[0]} on a {kind} language model (its protocols: "
                                 f"{', '.join(allowed)})")

    def resolve_protocols(self, requested: list[str] | None, dataset: TextCorpus, config) -> list[str]:
        if requested is None:
            return [p for p in self.default_protocols if p in supported_protocols(config)]
        self.check_protocols(requested, config)
        self._check_labels(requested, dataset)
        return requested

    @staticmethod
    def _check_labels(protocols: Sequence[str], dataset: TextCorpus) -> None:
        if "finetune" in protocols and "label" not in dataset.splits["train"].column_names:
            raise HfSslError(f"cannot evaluate finetune: {dataset.name} has no 'label' column (austen has one: "
                             "which novel a paragraph is from)")

    def prepare(self, config, dataset: TextCorpus, start: StartingPoint, work_dir: str) -> PreparedData:
        train = dataset.splits["train"]
        tokenizer = self._tokenizer(config, start, work_dir, train)
        self._fit_config(config, tokenizer, start)
        table = continuation_token_table(tokenizer) if getattr(config, "whole_word_mask", False) else None
        try:
            if getattr(config, "nsp", False):
                blocks = next_sentence_pairs(train, tokenizer, config.max_length, seed=0,
                                             continuation_table=table)
            else:
                prefix, suffix, document_end = block_framing(tokenizer, config.causal)
                blocks = pack_blocks(train.select_columns(["text"]), tokenizer, config.max_length, prefix_ids=prefix,
                                     suffix_ids=suffix, document_end_ids=document_end, continuation_table=table)
        except ValueError as e:
            raise HfSslError(f"cannot build training examples from {dataset.name}: {e}") from None
        if len(blocks) == 0:
            raise HfSslError(f"{dataset.name} yields no training examples")
        return PreparedData(train_dataset=blocks, processor=tokenizer)

    def _tokenizer(self, config, start: StartingPoint, work_dir: str, train: datasets.Dataset) -> PreTrainedTokenizerBase:
        """Given (--tokenizer), the continued checkpoint's own (--backbone), or trained on the corpus."""
        if start.tokenizer:
            return load_tokenizer(start.tokenizer)
        if start.checkpoint:
            return load_tokenizer(start.checkpoint)
        trainer = LANGUAGE_MODEL_TOKENIZER_TRAINERS[config.tokenizer_kind]

        def texts():
            for start in range(0, len(train), 1000):
                yield train[start : start + 1000]["text"]

        tokenizer, trained = trained_or_cached_tokenizer(work_dir, lambda: trainer(texts(), config.tokenizer_vocab_size))
        if trained:
            print(f"Trained a {len(tokenizer)}-token {config.tokenizer_kind} tokenizer on {len(train)} documents")
        return tokenizer

    @staticmethod
    def _fit_config(config, tokenizer: PreTrainedTokenizerBase, start: StartingPoint) -> None:
        """Make the backbone agree with the tokenizer before the model is built: vocabulary size (a trained
        tokenizer's own; a checkpoint's embedding table must hold every id) and the special token ids the exported
        model and pipelines read."""
        backbone = config.backbone_config
        tokenizer.model_max_length = config.max_length  # pipelines then truncate to what the model was trained on
        if start.checkpoint:
            if len(tokenizer) > backbone.vocab_size:
                raise HfSslError(f"the tokenizer has {len(tokenizer)} tokens but {start.checkpoint} embeds only "
                                 f"{backbone.vocab_size}: use the checkpoint's own tokenizer")
        else:
            backbone.vocab_size = len(tokenizer)
        if tokenizer.pad_token_id is not None:
            backbone.pad_token_id = tokenizer.pad_token_id
        if config.causal:
            if tokenizer.eos_token_id is None:
                raise HfSslError("a causal language model needs a tokenizer with an end-of-text (eos) token")
            backbone.eos_token_id = tokenizer.eos_token_id
            backbone.bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
            if backbone.pad_token_id is None:
                backbone.pad_token_id = tokenizer.eos_token_id
        else:
            if tokenizer.mask_token_id is None:
                raise HfSslError("a masked language model needs a tokenizer with a [MASK] token")
            config.mask_token_id = tokenizer.mask_token_id
            if getattr(config, "nsp", False) and (tokenizer.cls_token_id is None or tokenizer.sep_token_id is None):
                raise HfSslError("next-sentence prediction needs a tokenizer with [CLS] and [SEP] tokens")

    def evaluation_dataset(self, spec: EvaluationSpec) -> str | None:
        # fine-tuning needs labels: the built-in labelled task is which novel an Austen paragraph is from
        return "austen" if "finetune" in spec.protocols else self.default_dataset

    def evaluate(self, model_dir: str | os.PathLike, spec: EvaluationSpec, dataset: TextCorpus | None = None,
                 images=None) -> dict[str, dict[str, Any]]:
        """fill-mask loads the folder as `AutoModelForMaskedLM`, perplexity as `AutoModelForCausalLM`, finetune as
        `AutoModelForSequenceClassification`; blocks are as long as the tokenizer's `model_max_length` (hf-ssl saves
        the training length there), at most the model's positions."""
        if spec.data.label_column not in (None, "label"):
            raise HfSslError("text datasets are read with their labels in a 'label' column; --label_column does not "
                             "apply")
        dataset = dataset or self.load_dataset(DataSpec(self.evaluation_dataset(spec) if spec.data.dataset is None
                                                        else spec.data.dataset, spec.data.data_dir,
                                                        text_column=spec.data.text_column))
        self._check_labels(spec.protocols, dataset)
        language = [p for p in spec.protocols if p in LANGUAGE_PROTOCOLS]
        results: dict[str, dict[str, Any]] = {}
        if language:
            kinds = {LANGUAGE_PROTOCOLS[p] for p in language}
            if len(kinds) != 1:
                raise HfSslError(f"language-model protocols are {' or '.join(LANGUAGE_PROTOCOLS)}, one at a time "
                                 f"(got {', '.join(spec.protocols)})")
            model, tokenizer, max_length = load_language_model(str(model_dir), causal=kinds.pop())
            results.update(evaluate_language_model(model, tokenizer, dataset.splits, dataset.name, max_length,
                                                   language))
        if "finetune" in spec.protocols:
            results["finetune"] = finetune_text_classifier(model_dir, dataset.splits, dataset.name, spec.finetune)
        return results

    def verify_export(self, out_dir: Path, config, dataset: TextCorpus) -> None:
        """Without tokenizer.json the pipeline tokenizes everything as unknown; ids beyond the embedding table crash
        only on the texts that contain them; a missing [MASK] / end-of-text token breaks the pipeline."""
        if not (out_dir / "tokenizer.json").is_file():
            raise HfSslError(f"export error: {out_dir} lacks tokenizer.json")
        tokenizer = load_tokenizer(str(out_dir))
        exported = AutoConfig.from_pretrained(out_dir)
        if len(tokenizer) > exported.vocab_size:
            raise HfSslError(f"export error: the tokenizer has {len(tokenizer)} tokens, the model embeds "
                             f"{exported.vocab_size}")
        special = tokenizer.eos_token_id if config.causal else tokenizer.mask_token_id
        if special is None:
            raise HfSslError(f"export error: the tokenizer in {out_dir} lacks its "
                             f"{'end-of-text' if config.causal else '[MASK]'} token")

    def card_fields(self, model, config, dataset: TextCorpus, start: StartingPoint) -> dict[str, Any]:
        native = model.exported_model()
        source = start.tokenizer or start.checkpoint
        return dict(
            backbone_description=describe_backbone(native), max_length=config.max_length,
            vocab_size=native.config.vocab_size, causal=config.causal,
            tokenizer_description=(f"`{portable_value(source)}`'s tokenizer" if source
                                   else f"a {config.tokenizer_kind} tokenizer trained on the corpus"),
            nsp=bool(getattr(config, "nsp", False)),
        )


register_modality(TextModality())
