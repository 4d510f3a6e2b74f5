"""word2vec's reference implementation: gensim's `Word2Vec` (its C extension follows word2vec.c: plain SGD, one
pair at a time, in `workers` threads), trained on the same texts, words and hyperparameters as hf-ssl's word2vec.
`hf-ssl benchmark --method word2vec --reference` times it (`Method.reference_training`), and
scripts/benchmark_word2vec.py also scores its vectors.

Words are split by hf-ssl's rule (`WORD_PATTERN`, lower-cased), so both sides count the same vocabulary
(`min_count` over the same tokens) and train on the same words.
"""

from __future__ import annotations

import re
import time
from typing import Sequence

from ..data.word_vocabulary import WORD_PATTERN
from ..errors import HfSslError
from ..modeling.word2vec.configuration_word2vec import Word2VecConfig
from ..registry import ReferenceTraining


def gensim_sentences(texts: Sequence[str]) -> list[list[str]]:
    """Each text as the list of its words, split as hf-ssl's tokenizer splits them (gensim takes word lists)."""
    pattern = re.compile(WORD_PATTERN)
    return [pattern.findall(text.lower()) for text in texts]


def train_gensim(config: Word2VecConfig, sentences: list[list[str]], epochs: int, workers: int, seed: int = 0):
    """gensim's Word2Vec with `config`'s hyperparameters (negative sampling, no hierarchical softmax), its vocabulary
    built, then trained for `epochs`. Returns the model and the training seconds (vocabulary building excluded)."""
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise HfSslError("the word2vec reference is gensim's Word2Vec: `pip install gensim`") from None
    model = Word2Vec(vector_size=config.vector_size, window=config.window, negative=config.negative,
                     ns_exponent=config.ns_exponent, sample=config.sample, min_count=config.min_count,
                     max_final_vocab=config.max_vocab_size, sg=int(config.architecture == "skip-gram"), hs=0,
                     cbow_mean=int(config.cbow_mean), workers=workers, seed=seed)
    model.build_vocab(sentences)
    start = time.perf_counter()
    model.train(sentences, total_examples=model.corpus_count, epochs=epochs)
    return model, time.perf_counter() - start


def gensim_reference(config: Word2VecConfig, dataset, epochs: int, workers: int) -> ReferenceTraining:
    """`Method.reference_training` of word2vec: gensim on the dataset's training split; its units are the
    in-vocabulary corpus words times the epochs (the words both implementations train on, before subsampling)."""
    sentences = gensim_sentences(dataset.splits[dataset.train_split]["text"])
    model, seconds = train_gensim(config, sentences, epochs, workers)
    words = int(sum(model.wv.get_vecattr(word, "count") for word in model.wv.index_to_key))
    return ReferenceTraining(name=f"gensim Word2Vec (workers={workers})", seconds=seconds, units=words * epochs,
                             unit="words")


__all__ = ["gensim_reference", "gensim_sentences", "train_gensim"]
