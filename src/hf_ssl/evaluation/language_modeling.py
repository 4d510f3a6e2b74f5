"""Held-out evaluation of language models, each next to the baseline that knows only token frequencies.

- ``fill-mask`` (masked LMs): the held-out text is packed into blocks as in training; 15% of the non-special tokens
  are chosen with a fixed seed and *all* of them replaced by [MASK] (what `pipeline("fill-mask")` shows a model;
  no random or kept tokens); the score is top-1 accuracy of the model's prediction of the original token at the
  chosen positions. Baseline ``fill-mask-unigram-baseline``: always predict the most frequent non-special token of
  the training split, on the same positions.
- ``perplexity`` (causal LMs): exp of the mean next-token cross-entropy over every predicted held-out token, next to
  ``perplexity-unigram-baseline``, the perplexity of the training split's unigram distribution (add-one smoothed)
  on the same tokens; and ``next-token``, top-1 next-token accuracy.
"""

from __future__ import annotations

import math
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.language_modeling import CausalLanguageModelingCollator, block_framing, pack_blocks, token_table_size
from ..errors import HfSslError
from ..nn.token_masking import select_tokens

EVAL_MASK_PROBABILITY = 0.15
EVAL_SEED = 0
LANGUAGE_PROTOCOLS = {"fill-mask": False, "perplexity": True}  # protocol -> whether it evaluates a causal LM


def token_counts(split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """How often each token id occurs in a split's text (no special tokens), tokenized in batches."""
    counts = np.zeros(token_table_size(tokenizer), dtype=np.int64)
    for start in range(0, len(split), 1000):
        ids = tokenizer(split[start : start + 1000]["text"], add_special_tokens=False, verbose=False)["input_ids"]
        flat = np.fromiter((t for doc in ids for t in doc), dtype=np.int64)
        counts += np.bincount(flat, minlength=len(counts))[: len(counts)]
    return counts


def _blocks(split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, causal: bool) -> list[torch.Tensor]:
    prefix, suffix, document_end = block_framing(tokenizer, causal)
    packed = pack_blocks(split.select_columns(["text"]), tokenizer, max_length, prefix_ids=prefix, suffix_ids=suffix,
                         document_end_ids=document_end)
    return [torch.tensor(ids) for ids in packed["input_ids"]]


def _batches(blocks: list[torch.Tensor], pad_id: int, batch_size: int):
    """(input ids, attention mask) batches of the blocks, padded as in training."""
    collate = CausalLanguageModelingCollator(pad_id)
    for start in range(0, len(blocks), batch_size):
        batch = collate([{"input_ids": block} for block in blocks[start : start + batch_size]])
        yield batch["input_ids"], batch["attention_mask"]


def _entry(protocol: str, dataset: str, value: float, metric: str, **params) -> dict[str, Any]:
    return {"protocol": protocol, "dataset": dataset, "split": "test", "value": float(value), "metric": metric,
            "params": params}


@torch.no_grad()
def evaluate_fill_mask(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, corpus: datasets.DatasetDict,
                       dataset_name: str, max_length: int, batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """Masked-token top-1 accuracy on the test split, and the most-frequent-token baseline (see module docstring)."""
    if tokenizer.mask_token_id is None:
        raise HfSslError("fill-mask evaluation needs a tokenizer with a [MASK] token")
    most_frequent = int(np.argmax(token_counts(corpus["train"], tokenizer)))
    special = torch.zeros(len(tokenizer) + 1, dtype=torch.bool)
    special[list(tokenizer.all_special_ids)] = True
    generator = torch.Generator().manual_seed(EVAL_SEED)
    model.eval()
    device = next(model.parameters()).device
    correct = baseline_correct = total = 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for ids, attention in _batches(_blocks(corpus["test"], tokenizer, max_length, causal=False), pad, batch_size):
        candidates = ~special[ids.clamp(max=len(special) - 1)] & attention.bool()
        chosen = select_tokens(candidates, EVAL_MASK_PROBABILITY, generator)
        masked = torch.where(chosen, torch.full_like(ids, tokenizer.mask_token_id), ids)
        logits = model(input_ids=masked.to(device), attention_mask=attention.to(device)).logits
        predictions = logits[chosen.to(device)].argmax(-1).cpu()
        targets = ids[chosen]
        correct += int((predictions == targets).sum())
        baseline_correct += int((targets == most_frequent).sum())
        total += int(chosen.sum())
    if total == 0:
        raise HfSslError(f"the test split of {dataset_name} holds no tokens to evaluate")
    params = dict(mask_probability=EVAL_MASK_PROBABILITY, seed=EVAL_SEED, num_predictions=total)
    return {
        "fill-mask": _entry("fill-mask", dataset_name, correct / total, "accuracy", **params),
        "fill-mask-unigram-baseline": _entry("fill-mask-unigram-baseline", dataset_name, baseline_correct / total,
                                             "accuracy", token=tokenizer.convert_ids_to_tokens(most_frequent), **params),
    }


@torch.no_grad()
def evaluate_perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, corpus: datasets.DatasetDict,
                        dataset_name: str, max_length: int, batch_size: int = 32) -> dict[str, dict[str, Any]]:
    """Held-out perplexity and next-token accuracy, and the unigram perplexity (see module docstring)."""
    counts = token_counts(corpus["train"], tokenizer).astype(np.float64) + 1.0  # add-one smoothing
    unigram_log_prob = torch.from_numpy(np.log(counts / counts.sum()))
    model.eval()
    device = next(model.parameters()).device
    nll = unigram_nll = 0.0
    correct = total = 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for ids, attention in _batches(_blocks(corpus["test"], tokenizer, max_length, causal=True), pad, batch_size):
        logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits[:, :-1].float().cpu()
        targets, scored = ids[:, 1:], attention[:, 1:].bool()
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        nll -= float(log_probs[scored].double().sum())
        unigram_nll -= float(unigram_log_prob[targets[scored]].sum())
        correct += int((logits.argmax(-1) == targets)[scored].sum())
        total += int(scored.sum())
    if total == 0:
        raise HfSslError(f"the test split of {dataset_name} holds no tokens to evaluate")
    return {
        "perplexity": _entry("perplexity", dataset_name, math.exp(nll / total), "perplexity", num_tokens=total),
        "perplexity-unigram-baseline": _entry("perplexity-unigram-baseline", dataset_name,
                                              math.exp(unigram_nll / total), "perplexity", num_tokens=total),
        "next-token": _entry("next-token", dataset_name, correct / total, "accuracy", num_tokens=total),
    }


def evaluate_language_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                            corpus: datasets.DatasetDict, dataset_name: str, max_length: int,
                            protocols: list[str]) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        if protocol == "fill-mask":
            results.update(evaluate_fill_mask(model, tokenizer, corpus, dataset_name, max_length))
        elif protocol == "perplexity":
            results.update(evaluate_perplexity(model, tokenizer, corpus, dataset_name, max_length))
        else:
            raise HfSslError(f"unknown language-model protocol '{protocol}' (available: {', '.join(LANGUAGE_PROTOCOLS)})")
    return results


def load_language_model(model_dir: str, causal: bool) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, int]:
    """A masked (`AutoModelForMaskedLM`) or causal (`AutoModelForCausalLM`) LM folder or Hub id with its fast tokenizer,
    and the block length to evaluate it at: the tokenizer's `model_max_length` (hf-ssl saves the training length
    there), at most the model's positions."""
    import transformers

    from ..data.tokenizers import load_tokenizer
    from ..errors import first_line

    auto_class = transformers.AutoModelForCausalLM if causal else transformers.AutoModelForMaskedLM
    tokenizer = load_tokenizer(str(model_dir))
    try:
        model = auto_class.from_pretrained(str(model_dir), use_safetensors=True)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load {model_dir} as a {auto_class.__name__}: {first_line(e)}") from None
    return model, tokenizer, evaluation_block_length(tokenizer, model.config)


def evaluation_block_length(tokenizer: PreTrainedTokenizerBase, config) -> int:
    """The longest input to evaluate a language model folder at: the tokenizer's `model_max_length` (hf-ssl saves the
    training length there), at most the model's positions (512 when the config does not say)."""
    from ..modeling.language_model import max_positions

    return min(int(tokenizer.model_max_length), max_positions(config) or 512)
