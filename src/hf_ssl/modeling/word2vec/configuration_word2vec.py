"""Configuration of word2vec.

Mikolov, Chen, Corrado, Dean. "Efficient Estimation of Word Representations in Vector Space", ICLR workshop 2013
(arXiv:1301.3781): the continuous bag-of-words (CBOW) and continuous skip-gram architectures. Mikolov, Sutskever,
Chen, Corrado, Dean. "Distributed Representations of Words and Phrases and their Compositionality", NIPS 2013
(arXiv:1310.4546): negative sampling with the unigram distribution raised to 3/4, and subsampling of frequent
words. The defaults are those of the reference implementation word2vec.c as gensim exposes them (skip-gram,
100 dimensions, window 5, 5 negatives, sample 1e-3, min_count 5, CBOW averaging its context).

This file imports only transformers: it is copied into the exported folder and loaded there without hf_ssl.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

ARCHITECTURES = ("skip-gram", "cbow")
OPTIMIZERS = ("sparse_adam", "trainer")


@strict
class Word2VecConfig(PretrainedConfig):
    r"""
    architecture (`str`, defaults to "skip-gram"): "skip-gram" predicts each context word from the centre word;
        "cbow" predicts the centre word from its context (2013a, Fig. 1).
    vector_size (`int`, defaults to 100): dimension of the word vectors.
    window (`int`, defaults to 5): largest distance between centre and context word; each centre draws its
        effective window uniformly from 1..window (word2vec.c), which weights near words more.
    negative (`int`, defaults to 5): noise words per example (2013b: 5-20 for small data, 2-5 for large).
    ns_exponent (`float`, defaults to 0.75): noise distribution P(w) ~ count(w) ** ns_exponent (2013b: 3/4
        "significantly outperformed" the unigram and uniform distributions).
    sample (`float`, defaults to 1e-3): subsampling threshold of frequent words (0 disables it).
    min_count (`int`, defaults to 5): words seen fewer times are not in the vocabulary.
    max_vocab_size (`int`, *optional*): keep only this many of the most frequent words.
    cbow_mean (`bool`, defaults to `True`): CBOW averages its context vectors (False: sums them).
    noise_group (`int`, defaults to 128): consecutive input tokens that share their noise words (see
        `hf_ssl.losses.negative_sampling`). word2vec.c draws `negative` words per pair; sharing them makes a
        group's noise scores one matrix product. Measured on Austen + Lee + Wikipedia (1.17M tokens, 5 epochs):
        groups of 128 sharing 32 words gave WordSim-353 rho 0.41 and 6.2% analogies, one pool of 64 words for a
        whole 8,000-word batch 0.21 and 4.6% (too few distinct noise words per step).
    noise_words (`int`, defaults to 32): noise words drawn per group; each weighs `negative / noise_words`, so a
        pair's expected loss is the paper's with `negative` noise words.
    optimizer (`str`, defaults to "sparse_adam"): "sparse_adam": the embeddings' gradients are sparse (only the
        rows of a batch's words) and the model trains with a lazy Adam (`hf_ssl.nn.lazy_adam.LazyAdam`, the update of
        `torch.optim.SparseAdam`: Adam on the touched rows only, whatever `--optim` says), so a step costs what its batch holds, not the 2 x vocabulary x dimension dense
        gradient and Adam update; "trainer": dense gradients and Trainer's `--optim`.
    loss_reduction (`str`, defaults to "mean"): the batch's loss is the "mean" or the "sum" over its pairs.
    vocab_size (`int`): words + 1 (the unknown word, last); set from the data before the model is built.
    """

    model_type = "hf_ssl_word2vec"

    architecture: str = "skip-gram"
    vector_size: int = 100
    window: int = 5
    negative: int = 5
    ns_exponent: float = 0.75
    sample: float = 1e-3
    min_count: int = 5
    max_vocab_size: int | None = None
    cbow_mean: bool = True
    vocab_size: int = 2
    noise_group: int = 128
    noise_words: int = 32
    optimizer: str = "sparse_adam"
    loss_reduction: str = "mean"

    def validate_word2vec(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got '{self.architecture}'")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'")
        for name in ("vector_size", "window", "min_count", "vocab_size", "noise_group", "noise_words"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.negative < 1:
            raise ValueError(f"negative must be >= 1 (negative sampling needs noise words), got {self.negative}")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0 (0 disables subsampling), got {self.sample}")
        if self.max_vocab_size is not None and self.max_vocab_size < 1:
            raise ValueError(f"max_vocab_size must be >= 1, got {self.max_vocab_size}")


__all__ = ["Word2VecConfig"]
