"""Language-modelling data: tokenized documents packed into fixed-length blocks, BERT's next-sentence pairs, and
the collators that pad a batch and (for masked LM) corrupt it afresh at every step.

Packing (GPT-2; RoBERTa's FULL-SENTENCES) concatenates the documents, with a separator token between them, and
cuts the stream into blocks of ``max_length`` tokens, so no compute is spent on padding. Masked-LM blocks are
framed ``[CLS] ... [SEP]``; causal-LM blocks carry an end-of-text token after every document (the notes:
"[EOS] The cat is sleeping. It's on the sofa. [EOS]").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ..nn.token_masking import mask_tokens

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9])")


def token_table_size(tokenizer: PreTrainedTokenizerBase) -> int:
    """Length of a per-token-id lookup table: every id the tokenizer can emit (added tokens may lie beyond
    `len(tokenizer)` when ids have gaps)."""
    return max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)


def continuation_token_table(tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """Bool per token id: True when the token continues the word before it (a WordPiece ``##`` piece; for
    byte-level BPE a piece without the leading-space marker ``Ġ``; for SentencePiece one without ``▁``).
    Special tokens never continue a word. Whole-word masking groups a word's pieces with it."""
    vocab = tokenizer.get_vocab()
    table = np.zeros(token_table_size(tokenizer), dtype=bool)
    model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    prefix = getattr(model, "continuing_subword_prefix", None) if type(model).__name__ == "WordPiece" else None
    pieces = list(vocab.items())
    if prefix:
        for token, index in pieces:
            table[index] = token.startswith(prefix)
    else:
        word_marker = "▁" if any(t.startswith("▁") for t, _ in pieces[:2000]) else "Ġ"
        for token, index in pieces:
            table[index] = not token.startswith(word_marker)
    table[list(tokenizer.all_special_ids)] = False
    return table


def block_framing(tokenizer: PreTrainedTokenizerBase, causal: bool) -> tuple[list[int], list[int], list[int]]:
    """(prefix, suffix, document end) token ids of a packed block: ``[CLS] ... [SEP]`` with [SEP] between
    documents for masked LMs (RoBERTa's FULL-SENTENCES; ``<s> ... </s>`` for RoBERTa's tokenizer), and the
    end-of-text token after each document for causal LMs (GPT-2)."""
    if causal:
        end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        if end is None:
            raise ValueError("a causal language model needs a tokenizer with an end-of-text (eos) token")
        return [], [], [end]
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or end is None:
        raise ValueError("a masked language model needs a tokenizer with [CLS] and [SEP] (or bos/eos) tokens")
    return [start], [end], [end]


def pack_blocks(
    corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, *, prefix_ids: list[int],
    suffix_ids: list[int], document_end_ids: list[int], continuation_table: np.ndarray | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """Tokenize ``corpus["text"]`` (batched, fast tokenizer) and pack it into blocks of at most ``max_length``:
    ``prefix + stream[i : i + n] + suffix`` with ``n = max_length - len(prefix) - len(suffix)``, where the stream
    is every document followed by ``document_end_ids``. Each map batch (1,000 documents) is packed on its own and
    its last, shorter block kept (padded by the collator), so nothing is dropped.

    Columns: ``input_ids``, ``special_tokens_mask`` (1 where a token may never be selected for prediction), and
    with a ``continuation_table`` ``word_starts`` (1 where a new word begins)."""
    content = max_length - len(prefix_ids) - len(suffix_ids)
    if content < 1:
        raise ValueError(f"max_length {max_length} leaves no room for text between the special tokens")
    special = np.zeros(token_table_size(tokenizer), dtype=bool)
    special[list(tokenizer.all_special_ids)] = True

    def pack(batch: dict[str, list]) -> dict[str, list]:
        ids = tokenizer(batch["text"], add_special_tokens=False, verbose=False)["input_ids"]
        stream = np.fromiter((t for doc in ids for t in (*doc, *document_end_ids)), dtype=np.int64)
        blocks = [stream[i : i + content] for i in range(0, len(stream), content)]
        framed = [np.concatenate([prefix_ids, block, suffix_ids]).astype(np.int64) for block in blocks]
        out = {"input_ids": framed, "special_tokens_mask": [special[b].astype(np.int8) for b in framed]}
        if continuation_table is not None:
            out["word_starts"] = [(~continuation_table[b]).astype(np.int8) for b in framed]
        return out

    return corpus.map(pack, batched=True, batch_size=1000, remove_columns=corpus.column_names, num_proc=num_proc,
                      desc="Tokenizing and packing")


def split_sentences(text: str) -> list[str]:
    """A paragraph's sentences: cut after . ! or ? (and closing quotes) before whitespace and a capital or digit."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def next_sentence_pairs(
    corpus: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int, seed: int = 0,
    next_probability: float = 0.5, continuation_table: np.ndarray | None = None,
) -> datasets.Dataset:
    """BERT's pre-training examples with next-sentence prediction (``create_pretraining_data.py``): each document
    is cut into sentences; segment A takes whole sentences up to about half of the budget, and B is, with
    ``next_probability``, the sentences that follow A in the same document (label 0, IsNext), otherwise as many
    sentences from a random other document (label 1, NotNext; ids as in ``BertForPreTraining``). The pair is
    truncated longest-first to ``[CLS] A [SEP] B [SEP]`` of at most ``max_length`` tokens, with token type 0 for
    ``[CLS] A [SEP]`` and 1 for ``B [SEP]``. A document with one sentence starts no IsNext pair. Built once with a
    fixed seed (BERT also builds its pairs offline); the masking is redrawn every step by the collator."""
    documents = [
        [s for s in tokenizer(split_sentences(text), add_special_tokens=False, verbose=False)["input_ids"] if s]
        for text in corpus["text"]
    ]
    documents = [d for d in documents if d]
    if len(documents) < 2:
        raise ValueError("next-sentence prediction needs at least two documents (random B segments come from another)")
    rng = random.Random(seed)
    budget = max_length - 3
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    rows: dict[str, list] = {"input_ids": [], "token_type_ids": [], "special_tokens_mask": [],
                             "next_sentence_label": []}
    if continuation_table is not None:
        rows["word_starts"] = []
    for doc_index, sentences in enumerate(documents):
        start = 0
        while start < len(sentences) - 1:
            a: list[int] = []
            end = start
            while end < len(sentences) - 1 and (not a or len(a) + len(sentences[end]) <= budget // 2):
                a += sentences[end]
                end += 1
            if rng.random() < next_probability:
                label, source, first = 0, sentences, end
            else:
                other = rng.randrange(len(documents) - 1)
                other += other >= doc_index
                label, source = 1, documents[other]
                first = rng.randrange(len(source))
            b: list[int] = []
            for sentence in source[first:]:
                if b and len(a) + len(b) + len(sentence) > budget:
                    break
                b += sentence
            a, b = _truncate_pair(a, b, budget)
            ids = [cls, *a, sep, *b, sep]
            rows["input_ids"].append(ids)
            rows["token_type_ids"].append([0] * (len(a) + 2) + [1] * (len(b) + 1))
            rows["special_tokens_mask"].append([1] + [0] * len(a) + [1] + [0] * len(b) + [1])
            rows["next_sentence_label"].append(label)
            if continuation_table is not None:
                rows["word_starts"].append((~continuation_table[np.asarray(ids)]).astype(np.int8).tolist())
            start = end  # a NotNext pair leaves the real continuation for the next pair, as BERT does
    return datasets.Dataset.from_dict(rows)


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer segment until both fit (BERT's ``truncate_seq_pair`` drops from the
    front or back at random; the end is enough here)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def _pad(sequences: list, value: int) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence([torch.as_tensor(s, dtype=torch.long) for s in sequences],
                                           batch_first=True, padding_value=value)


@dataclass
class MaskedLanguageModelingCollator:
    """Pads a batch of packed blocks or sentence pairs and applies BERT's masking afresh (dynamic masking, as
    RoBERTa): labels hold the original token at the selected positions and -100 elsewhere. Padding and special
    tokens are never selected."""

    pad_token_id: int
    mask_token_id: int
    vocab_size: int
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    whole_word_mask: bool = False

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_ids = _pad([e["input_ids"] for e in examples], self.pad_token_id)
        attention_mask = _pad([[1] * len(e["input_ids"]) for e in examples], 0)
        special = _pad([e["special_tokens_mask"] for e in examples], 1).bool()
        word_starts = None
        if self.whole_word_mask:
            if "word_starts" not in examples[0]:
                raise ValueError("whole-word masking needs the word_starts column (pack with a continuation table)")
            word_starts = _pad([e["word_starts"] for e in examples], 1).bool()
        corrupted, labels = mask_tokens(
            input_ids, ~special & attention_mask.bool(), self.mask_token_id, self.vocab_size, self.mlm_probability,
            self.mask_replace_prob, self.random_replace_prob, word_starts)
        batch = {"input_ids": corrupted, "attention_mask": attention_mask, "labels": labels}
        if "token_type_ids" in examples[0]:
            batch["token_type_ids"] = _pad([e["token_type_ids"] for e in examples], 0)
        if "next_sentence_label" in examples[0]:
            batch["next_sentence_label"] = torch.tensor([int(e["next_sentence_label"]) for e in examples])
        return batch


@dataclass
class CausalLanguageModelingCollator:
    """Pads a batch of packed blocks (only the last block of a map batch can be shorter); the model predicts each
    token from the ones before it, so the inputs are their own targets."""

    pad_token_id: int

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {"input_ids": _pad([e["input_ids"] for e in examples], self.pad_token_id),
                "attention_mask": _pad([[1] * len(e["input_ids"]) for e in examples], 0)}
