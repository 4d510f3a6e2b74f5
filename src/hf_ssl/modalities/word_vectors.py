"""Words: the modality of word2vec. Loads a text corpus (`hf_ssl.data.text`), builds the word vocabulary (cached under
the run's work folder, so a resumed run keeps its word ids), turns the corpus into the per-epoch re-sampled
examples of `hf_ssl.data.word_vocabulary`, exports the WordLevel tokenizer next to the model (and, through the
model's export hook, `vectors.txt`), and evaluates the vectors on word similarity and analogies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..data.word_vocabulary import VOCABULARY_FILE, Word2VecTrainingData, cached_vocabulary, encode_corpus
from ..errors import HfSslError
from ..evaluation.word_vectors import (WORD_VECTOR_PROTOCOLS, default_protocol_file, evaluate_word_vectors,
                                      load_word_vectors, protocol_files)
from ..modeling.word2vec.configuration_word2vec import Word2VecConfig
from ..modeling.word2vec.modeling_word2vec import WORD2VEC_TEXT_FILE
from . import EvaluationSpec, PreparedData, StartingPoint, register_modality
from .text import TextCorpus, TextCorpusModality

CHUNK_WORDS = 1_000  # corpus words per training example; a batch of B examples holds about B * 1,000 words


class WordVectorModality(TextCorpusModality):
    name = "words"
    model_description = "word vectors"
    protocols = WORD_VECTOR_PROTOCOLS
    default_protocols = WORD_VECTOR_PROTOCOLS
    card_template = "word_vectors.md.j2"
    pipeline_tag = "feature-extraction"
    task_type = "word-similarity"

    def recognizes(self, config) -> bool:
        return config.model_type == Word2VecConfig.model_type

    def resolve_protocols(self, requested: list[str] | None, dataset: TextCorpus, config) -> list[str]:
        """Usually both, with gensim's WordSim-353 and analogy files; without gensim none (asked for: an error now,
        before training, not after)."""
        if requested is None:
            return [p for p in self.default_protocols if default_protocol_file(p) is not None]
        self.check_protocols(requested, config)
        for protocol in requested:
            if default_protocol_file(protocol) is None:
                raise HfSslError(f"cannot evaluate {protocol} after training without gensim's test files (`pip install "
                                 f"gensim`); or train with --eval_protocols none and run `hf-ssl evaluate` with a file")
        return requested

    def prepare(self, config, dataset: TextCorpus, start: StartingPoint, work_dir: str) -> PreparedData:
        texts = dataset.splits[dataset.train_split]["text"]
        vocabulary, built = cached_vocabulary(work_dir, texts, config.min_count, config.max_vocab_size)
        if built:
            print(f"Built a vocabulary of {len(vocabulary)} words (min_count {config.min_count}) covering "
                  f"{vocabulary.total} tokens of {dataset.name}")
        config.vocab_size = len(vocabulary) + 1  # + the unknown word, last
        ids, docs = encode_corpus(vocabulary, texts)
        train = Word2VecTrainingData(ids, docs, vocabulary, config.window, config.sample, config.ns_exponent,
                                     config.noise_group, config.noise_words, chunk_words=CHUNK_WORDS)
        # No DataLoader worker: a batch costs about a tenth of its step to draw, and a worker process on the step's
        # cores stalls its threads (5 epochs on 1.17M words, 2 cores, 2 torch threads: 14.4 s without a worker,
        # 22.1 s with one)
        return PreparedData(train_dataset=train, processor=vocabulary.tokenizer(), loader_workers=0)

    def evaluation_dataset(self, spec: EvaluationSpec) -> str | None:
        return None  # word lists (`--pairs`, `--questions`), not a corpus

    def evaluate(self, model_dir: str | os.PathLike, spec: EvaluationSpec, dataset: TextCorpus | None = None,
                 images=None) -> dict[str, dict[str, Any]]:
        """The vectors of a word2vec folder (or a word2vec text file) on word similarity and analogies."""
        protocol_files(spec.protocols, spec.pairs, spec.questions)  # a missing file is an error before the model loads
        vectors, words = load_word_vectors(str(model_dir))
        return evaluate_word_vectors(vectors, words, spec.protocols, spec.pairs, spec.questions)

    def verify_export(self, out_dir: Path, config, dataset: TextCorpus) -> None:
        """vectors.txt must announce and hold every word of the vocabulary at the model's dimension."""
        path = out_dir / WORD2VEC_TEXT_FILE
        if not path.is_file():
            raise HfSslError(f"export error: {out_dir} lacks {WORD2VEC_TEXT_FILE}")
        with open(path, encoding="utf-8") as f:
            header = f.readline().split()
            rows = sum(1 for _ in f)
        expected = [str(config.vocab_size - 1), str(config.vector_size)]
        if header != expected or rows != config.vocab_size - 1:
            raise HfSslError(f"export error: {WORD2VEC_TEXT_FILE} has header {' '.join(header)} and {rows} rows, "
                             f"expected {' '.join(expected)} and {expected[0]} rows")

    def card_fields(self, model, config, dataset: TextCorpus, start: StartingPoint) -> dict[str, Any]:
        return dict(architecture_name=config.architecture, vector_size=config.vector_size,
                    vocabulary_size=config.vocab_size - 1, window=config.window, negative=config.negative,
                    min_count=config.min_count, sample=config.sample, chunk_words=CHUNK_WORDS,
                    vocabulary_file=VOCABULARY_FILE)


register_modality(WordVectorModality())
