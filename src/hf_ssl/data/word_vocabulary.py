"""word2vec's data pipeline (Mikolov et al. 2013a/b, as in the reference word2vec.c and gensim), vectorised.

- **Words**: lower-cased runs of letters and digits (`WORD_PATTERN`); the same rule is the exported tokenizer's
  (a `tokenizers` WordLevel model with a Lowercase normalizer and a Split pre-tokenizer), so a word is split
  the same way in training and by a user of the exported model. Tokenising and counting run in Rust.
- **Vocabulary**: the words seen at least `min_count` times, most frequent first (ties alphabetically), so a word's
  id is its frequency rank, as in gensim's `index_to_key`. Out-of-vocabulary words are dropped from the stream
  before windows are taken, as in word2vec.c (so a window reaches past them).
- **Subsampling of frequent words**: each occurrence of a word with count f is kept with probability
  `min(1, (sqrt(f / (s * T)) + 1) * (s * T) / f)`, T the number of in-vocabulary tokens and s the `sample`
  threshold. This is the formula of word2vec.c and gensim, not the paper's: 2013b (eq. 5) discards with
  probability `1 - sqrt(t / f)` with f a relative frequency; the code's keep probability is `sqrt(t/f) + t/f` in
  relative terms, which keeps more of the moderately frequent words. We follow the code whose defaults
  (sample 1e-3) everyone uses.
- **Dynamic window**: each centre word draws its effective window uniformly from 1..window (word2vec.c's
  `b = rand() % window`), so near words are sampled more often; windows do not cross document boundaries.
- **Examples**: the surviving tokens as a stream, each a centre word, and a (T, 2 * window) mask of which token at
  each offset is one of its context words. Skip-gram trains every (context, centre) pair, oriented as in
  word2vec.c and gensim: the context word's input vector predicts the centre word. CBOW trains the average of
  the context words against the centre. The stream (not one row of context ids per centre) lets the model look
  every vector up once per token instead of once per pair.
- **Negatives**: drawn from the unigram distribution raised to 3/4 (`ns_exponent`), by inverse-CDF sampling on
  its cumulative table (gensim's `cum_table`), all at once with `torch.searchsorted`. Each group of
  `noise_group` consecutive tokens draws `noise_words` of them, shared by the pairs whose input is in the group
  (`hf_ssl.losses.negative_sampling`: the expected loss is the paper's; the scores are one matrix product per
  group). A batch's stream is padded to whole groups with the unknown word, which is in no example.
  word2vec.c draws fresh noise words for every pair.

Everything per epoch (which tokens survive subsampling, each centre's window, the negatives) is drawn from
torch's global generator when a batch of chunks of the corpus is fetched (`SeededCollator` seeds it per batch), so
each epoch sees new samples and a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import HfSslError

# Letters and digits, Unicode-aware; apostrophes, hyphens and underscores split words ("don't" -> don, t), as
# gensim's simple_preprocess does. Python's `re` and the Rust regex of `tokenizers` agree on this pattern.
WORD_PATTERN = r"[^\W_]+"
UNK_TOKEN = "[UNK]"
VOCABULARY_FILE = "word_vocabulary.json"
_ENCODE_BATCH = 2048  # documents per encode_batch call: bounds the memory of tokenizers' Encoding objects


def word_tokenizer_model(vocab: dict[str, int] | None = None):
    """The `tokenizers.Tokenizer` that splits text into words like the training pipeline (a WordLevel model over
    `vocab`, unknown words -> `[UNK]`)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel(vocab or {UNK_TOKEN: 0}, unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Lowercase()
    # invert=True + "removed": the pattern's matches are the words, everything between them is dropped
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)
    return tokenizer


@dataclass
class WordVocabulary:
    """The training vocabulary: `words[i]` has id i and was seen `counts[i]` times (descending)."""

    words: list[str]
    counts: np.ndarray  # int64, one per word

    def __len__(self) -> int:
        return len(self.words)

    @property
    def total(self) -> int:
        """T: the number of in-vocabulary tokens of the corpus."""
        return int(self.counts.sum())

    @classmethod
    def from_texts(cls, texts: Sequence[str], min_count: int, max_vocab_size: int | None = None) -> WordVocabulary:
        """Count every word of `texts` (in Rust), keep those seen at least `min_count` times (and, given
        `max_vocab_size`, only that many of the most frequent). Raises HfSslError when no word qualifies."""
        from tokenizers import trainers

        counter = word_tokenizer_model()
        counter.train_from_iterator(texts, trainers.WordLevelTrainer(
            vocab_size=2**31 - 1, min_frequency=0, special_tokens=[UNK_TOKEN], show_progress=False))
        ids, _ = encode_texts(counter, texts)
        counts = np.bincount(ids, minlength=counter.get_vocab_size())
        by_id = np.empty(counter.get_vocab_size(), dtype=object)
        for word, i in counter.get_vocab().items():
            by_id[i] = word
        unk = counter.token_to_id(UNK_TOKEN)
        counts[unk] = 0  # never a word (its text may still occur literally: "[unk]" is split into "unk")
        eligible = np.flatnonzero(counts >= max(min_count, 1))
        if eligible.size == 0:
            seen = int((counts > 0).sum())
            raise HfSslError(f"no word occurs at least min_count={min_count} times in the corpus ({seen} distinct "
                             f"words, the most frequent {int(counts.max()) if seen else 0} times): lower --min_count "
                             "or give more text")
        order = eligible[np.lexsort((by_id[eligible].astype(str), -counts[eligible]))]
        if max_vocab_size:
            order = order[:max_vocab_size]
        return cls(words=[str(w) for w in by_id[order]], counts=counts[order].astype(np.int64))

    # ------------------------------------------------------------------------------------------- persistence
    def save(self, path: str) -> None:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"words": self.words, "counts": self.counts.tolist()}, f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> WordVocabulary:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return cls(words=list(data["words"]), counts=np.asarray(data["counts"], dtype=np.int64))

    # ---------------------------------------------------------------------------------------- distributions
    def keep_probabilities(self, sample: float) -> np.ndarray:
        """Per word, the probability that an occurrence survives subsampling (word2vec.c / gensim formula, see the
        module docstring); all ones when `sample` is 0 (no subsampling)."""
        counts = self.counts.astype(np.float64)
        if sample <= 0:
            return np.ones_like(counts)
        threshold = sample * counts.sum()
        return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)

    def negative_distribution(self, exponent: float) -> np.ndarray:
        """P(w) proportional to count(w) ** exponent (0.75 in the paper: the unigram distribution raised to 3/4)."""
        weights = self.counts.astype(np.float64) ** exponent
        return weights / weights.sum()

    def tokenizer(self):
        """The exported tokenizer: a `PreTrainedTokenizerFast` over these words, `[UNK]` last (id len(self))."""
        from transformers import PreTrainedTokenizerFast

        vocab = {word: i for i, word in enumerate(self.words)}
        vocab[UNK_TOKEN] = len(self.words)
        return PreTrainedTokenizerFast(tokenizer_object=word_tokenizer_model(vocab), unk_token=UNK_TOKEN)


def cached_vocabulary(work_dir: str, texts: Sequence[str], min_count: int,
                      max_vocab_size: int | None = None) -> tuple[WordVocabulary, bool]:
    """The vocabulary a previous run of the same output folder built (word ids must not change under a
    checkpoint), or a new one built from `texts` and saved. Returns it and whether it was built now."""
    path = os.path.join(work_dir, VOCABULARY_FILE)
    if os.path.isfile(path):
        return WordVocabulary.load(path), False
    vocabulary = WordVocabulary.from_texts(texts, min_count, max_vocab_size)
    os.makedirs(work_dir, exist_ok=True)
    vocabulary.save(path)
    return vocabulary, True


def encode_texts(tokenizer, texts: Sequence[str], drop_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All word ids of `texts` in order (int64), and the index of the document each comes from (int64).
    Tokens equal to `drop_id` (the unknown word) are removed."""
    id_parts, doc_parts = [], []
    for start in range(0, len(texts), _ENCODE_BATCH):
        batch = list(texts[start:start + _ENCODE_BATCH])
        encodings = tokenizer.encode_batch(batch, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        id_parts.append(np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum())))
        doc_parts.append(np.repeat(np.arange(start, start + len(batch), dtype=np.int64), lengths))
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
    docs = np.concatenate(doc_parts) if doc_parts else np.zeros(0, np.int64)
    if drop_id is not None:
        keep = ids != drop_id
        ids, docs = ids[keep], docs[keep]
    return ids, docs


def encode_corpus(vocabulary: WordVocabulary, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The corpus as in-vocabulary word ids (unknown words dropped, as word2vec.c does) and their document index."""
    vocab = {word: i for i, word in enumerate(vocabulary.words)}
    vocab[UNK_TOKEN] = len(vocabulary.words)
    return encode_texts(word_tokenizer_model(vocab), texts, drop_id=len(vocabulary.words))


# ------------------------------------------------------------------------------------------- per-epoch sampling


def subsample(ids: torch.Tensor, keep_probability: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask of the tokens that survive subsampling (each independently with its word's probability)."""
    return torch.rand(ids.shape, generator=generator, dtype=keep_probability.dtype) < keep_probability[ids]


def reduced_windows(n: int, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each centre word's effective window, uniform on 1..window (word2vec.c's dynamic window)."""
    return torch.randint(1, window + 1, (n,), generator=generator)


def context_mask(docs: torch.Tensor, windows: torch.Tensor, max_window: int) -> torch.Tensor:
    """(T, 2 * max_window) bool: whether the token at each offset -max_window..-1, 1..max_window of centre i is
    one of its context words: inside the stream, in the centre's document and within its reduced window.
    Skip-gram trains each such (context, centre) pair; CBOW the average of a centre's context words.
    A few whole-tensor operations on the (T, 2 * max_window) neighbourhood, never one per token (nor one per
    offset: 2 * max_window passes of small operations took 0.14 ms a 784-token chunk, these 0.05 ms)."""
    if docs.numel() == 0:
        return torch.zeros((0, 2 * max_window), dtype=torch.bool)
    distances = torch.tensor([abs(o) for o in range(-max_window, max_window + 1) if o != 0])
    # docs[i + offset] for every centre i and offset, -1 (no document) past either end of the stream
    neighbours = F.pad(docs, (max_window, max_window), value=-1).unfold(0, 2 * max_window + 1, 1)
    neighbours = torch.cat([neighbours[:, :max_window], neighbours[:, max_window + 1:]], dim=1)
    return (neighbours == docs[:, None]) & (windows[:, None] >= distances[None])


def draw_negatives(cumulative: torch.Tensor, shape: tuple[int, ...],
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Word ids drawn i.i.d. from the distribution whose cumulative sums are `cumulative` (float64, last = 1):
    inverse-CDF sampling, P(id = j) = cumulative[j] - cumulative[j - 1]."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return torch.searchsorted(cumulative, u, right=True).clamp_(max=cumulative.numel() - 1)


class Word2VecTrainingData(Dataset):
    """The corpus cut into chunks of `chunk_words` in-vocabulary tokens; fetching chunks draws their examples anew
    (subsampling, dynamic windows, noise words), so every epoch differs. An item is a dict of tensors, a token stream
    with its examples; `__getitems__` draws a batch of chunks as one such stream (`concatenate_examples` joins items
    fetched one by one):

    - `input_ids` (n,): the tokens that survive subsampling, padded with the unknown word (`pad_id`) to a multiple of
      `noise_group`; `context_mask` (n, 2 * window) which tokens around each are its context words (see
      `context_mask`; none for the padding, which is in no example),
    - `negative_ids` (n / noise_group, noise_words): the noise words of each group of `noise_group` tokens.

    A chunk boundary ends a document (one window cut per `chunk_words` tokens)."""

    def __init__(self, ids: np.ndarray, docs: np.ndarray, vocabulary: WordVocabulary, window: int, sample: float,
                 ns_exponent: float, noise_group: int, noise_words: int, chunk_words: int = 10_000):
        if ids.size == 0:
            raise HfSslError("the corpus holds no in-vocabulary word to train on")
        self.ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        self.docs = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.int64))
        self.num_docs = int(self.docs.max()) + 1
        self.window, self.noise_group, self.noise_words = window, noise_group, noise_words
        self.pad_id = len(vocabulary)  # the unknown word: never trained, not exported in vectors.txt
        self.keep_probability = torch.from_numpy(vocabulary.keep_probabilities(sample)).float()
        cumulative = np.cumsum(vocabulary.negative_distribution(ns_exponent))
        cumulative[-1] = 1.0
        self.cumulative = torch.from_numpy(cumulative)
        self.chunk_words = chunk_words
        self.num_chunks = -(-self.ids.numel() // chunk_words)

    def __len__(self) -> int:
        return self.num_chunks

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """The examples of chunks `indices`, drawn at once as one stream (one item): torch's batched-fetch protocol,
        which `SeededCollator` follows too. One draw for a batch of 8 chunks of 1,000 words took 0.6 ms here, eight
        draws of one chunk 1.6 ms (a tenth of the training step)."""
        spans = [slice(i * self.chunk_words, (i + 1) * self.chunk_words) for i in indices]
        # each chunk's documents get numbers of their own, so that no window reaches into the next chunk
        docs = torch.cat([self.docs[span] + position * self.num_docs for position, span in enumerate(spans)])
        return [self.examples(torch.cat([self.ids[span] for span in spans]), docs)]

    def examples(self, ids: torch.Tensor, docs: torch.Tensor,
                 generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The examples of the token stream `ids` (their documents `docs`), padded to whole noise groups."""
        kept = subsample(ids, self.keep_probability, generator)
        ids, docs = ids[kept], docs[kept]
        windows = reduced_windows(ids.numel(), self.window, generator)
        mask = context_mask(docs, windows, self.window)
        groups = max(1, -(-ids.numel() // self.noise_group))
        padding = groups * self.noise_group - ids.numel()
        return {"input_ids": torch.cat([ids, ids.new_full((padding,), self.pad_id)]),
                "context_mask": torch.cat([mask, mask.new_zeros((padding, mask.shape[1]))]),
                "negative_ids": draw_negatives(self.cumulative, (groups, self.noise_words), generator)}


def concatenate_examples(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The collator: several chunks' examples as one batch."""
    return {key: torch.cat([item[key] for item in items]) for key in items[0]}


