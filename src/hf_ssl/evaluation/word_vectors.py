"""Intrinsic evaluation of word vectors, as in the word2vec papers and gensim.

- `word-similarity`: Spearman's rank correlation between the cosine similarity of each word pair and human
  judgements (WordSim-353 style files: `word1<TAB or comma>word2<TAB or comma>score`, `#` comment lines). Pairs
  with a word outside the vocabulary are skipped; their share is reported.
- `analogy`: the "a is to b as c is to d" questions of Mikolov et al. 2013a (Google analogy style files,
  `: section` headers, then `a b c d` lines), answered by 3CosAdd: the word whose unit vector is closest (cosine)
  to b - a + c (of unit vectors), excluding a, b and c. As gensim's `evaluate_word_analogies`, only the 30,000
  most frequent words are candidates and only questions whose four words are among them count; accuracy is over
  those, and their share of all questions is reported as coverage.

Default files: gensim's test data (`wordsim353.tsv`, `questions-words.txt`) when gensim is installed.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import HfSslError, first_line
from ..modeling.word2vec.configuration_word2vec import Word2VecConfig

WORD_VECTOR_PROTOCOLS = ("word-similarity", "analogy")
ANALOGY_RESTRICT_VOCAB = 30_000  # gensim's evaluate_word_analogies default
_DEFAULT_FILES = {"word-similarity": "wordsim353.tsv", "analogy": "questions-words.txt"}
_FILE_FLAGS = {"word-similarity": "--pairs FILE", "analogy": "--questions FILE"}


def default_protocol_file(protocol: str) -> str | None:
    """gensim's copy of WordSim-353 / the Google analogies, or None when gensim is not installed."""
    try:
        from gensim.test.utils import datapath
    except ImportError:
        return None
    path = datapath(_DEFAULT_FILES[protocol])
    return path if os.path.isfile(path) else None


def protocol_file(protocol: str, given: str | None) -> str:
    """The file a protocol scores: the one given, else gensim's; a one-line error when there is none."""
    if given:
        if not os.path.isfile(given):
            raise HfSslError(f"{protocol} file {given} does not exist")
        return given
    path = default_protocol_file(protocol)
    if path is None:
        raise HfSslError(f"{protocol} needs a file: pass {_FILE_FLAGS[protocol]} (or `pip install gensim` for "
                         f"its {_DEFAULT_FILES[protocol]})")
    return path


def protocol_files(protocols: Sequence[str], pairs_file: str | None = None,
                   questions_file: str | None = None) -> dict[str, str]:
    """Each protocol's file, checked (call it before loading a model: a missing file is found in a second)."""
    files = {}
    for protocol in protocols:
        if protocol not in WORD_VECTOR_PROTOCOLS:
            raise HfSslError(f"unknown protocol '{protocol}' for word vectors (available: "
                             f"{', '.join(WORD_VECTOR_PROTOCOLS)})")
        files[protocol] = protocol_file(protocol, pairs_file if protocol == "word-similarity" else questions_file)
    return files


# ------------------------------------------------------------------------------------------------- file formats


def read_word_pairs(path: str) -> list[tuple[str, str, float]]:
    """(word1, word2, score) of a WordSim-353 style file; tab- or comma-separated, `#` lines are comments."""
    pairs = []
    for number, line in enumerate(_read_lines(path), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split(","))]
        try:
            pairs.append((fields[0].lower(), fields[1].lower(), float(fields[2])))
        except (IndexError, ValueError):
            raise HfSslError(f"{path} line {number} is not 'word1<TAB>word2<TAB>score': {line[:80]!r}") from None
    if not pairs:
        raise HfSslError(f"{path} holds no word pairs")
    return pairs


def read_analogies(path: str) -> list[tuple[str, str, str, str, str]]:
    """(section, a, b, c, d) of a Google analogy style file (`: section` lines, then `a b c d` lines)."""
    questions, section = [], ""
    for number, line in enumerate(_read_lines(path), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.lower().split()
        if len(words) != 4:
            raise HfSslError(f"{path} line {number} is not an analogy 'a b c d': {line[:80]!r}")
        questions.append((section, *words))
    if not questions:
        raise HfSslError(f"{path} holds no analogy questions")
    return questions


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise HfSslError(f"cannot read {path}: {first_line(e)}") from None


# ---------------------------------------------------------------------------------------------------- metrics


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def word_similarity(vectors: np.ndarray, words: Sequence[str], pairs: Sequence[tuple[str, str, float]]) -> dict[str, Any]:
    """Spearman's rho between cosine similarities and the human scores of the pairs whose words are both known."""
    from scipy.stats import spearmanr

    index = {w: i for i, w in enumerate(words)}
    known = [(index[a], index[b], s) for a, b, s in pairs if a in index and b in index]
    result = dict(pairs=len(pairs), pairs_used=len(known), oov_share=1 - len(known) / len(pairs))
    if len(known) < 3:
        return dict(result, spearman=float("nan"))
    unit = _unit_rows(vectors)
    first, second, human = (np.array(column) for column in zip(*known))
    cosine = (unit[first] * unit[second]).sum(1)
    return dict(result, spearman=float(spearmanr(cosine, human).statistic))


def analogy_accuracy(vectors: np.ndarray, words: Sequence[str], questions: Sequence[tuple[str, str, str, str, str]],
                     restrict_vocab: int = ANALOGY_RESTRICT_VOCAB, batch_size: int = 1024) -> dict[str, Any]:
    """3CosAdd accuracy over the questions whose four words are among the `restrict_vocab` first (most frequent)
    words, which are also the only candidate answers; a, b and c are never the answer."""
    candidates = min(restrict_vocab, len(words))
    index = {w: i for i, w in enumerate(words[:candidates])}
    known = [(index[a], index[b], index[c], index[d], section) for section, a, b, c, d in questions
             if a in index and b in index and c in index and d in index]
    result = dict(questions=len(questions), questions_used=len(known), coverage=len(known) / len(questions))
    if not known:
        return dict(result, accuracy=float("nan"), correct=0, sections={})
    unit = _unit_rows(np.asarray(vectors)[:candidates]).astype(np.float32)
    ids = np.array([q[:4] for q in known], dtype=np.int64)
    correct = np.zeros(len(known), dtype=bool)
    for start in range(0, len(known), batch_size):
        a, b, c, d = ids[start:start + batch_size].T
        query = unit[b] - unit[a] + unit[c]
        scores = query @ unit.T  # cosine up to the query's norm, which does not change the argmax
        rows = np.arange(len(a))
        for excluded in (a, b, c):
            scores[rows, excluded] = -np.inf
        correct[start:start + batch_size] = scores.argmax(1) == d
    sections: dict[str, list[int]] = {}
    for (*_, section), ok in zip(known, correct):
        sections.setdefault(section, [0, 0])
        sections[section][0] += int(ok)
        sections[section][1] += 1
    return dict(result, accuracy=float(correct.mean()), correct=int(correct.sum()),
                sections={s: ok / n for s, (ok, n) in sections.items()})


# ------------------------------------------------------------------------------------------------ entry points


def evaluate_word_vectors(vectors: np.ndarray, words: Sequence[str], protocols: Sequence[str],
                          pairs_file: str | None = None, questions_file: str | None = None) -> dict[str, dict[str, Any]]:
    """`{protocol: {"protocol", "dataset", "split", "value", "metric", "params", ...}}` for the requested protocols;
    a protocol the vocabulary covers too little of to score (fewer than 3 pairs, no question) is left out, with a
    note on stdout."""
    files = protocol_files(protocols, pairs_file, questions_file)
    results: dict[str, dict[str, Any]] = {}
    for protocol in protocols:
        path = files[protocol]
        if protocol == "word-similarity":
            scores = word_similarity(vectors, words, read_word_pairs(path))
            results[protocol] = dict(
                protocol=protocol, dataset=_dataset_name(path), split="test", value=scores["spearman"],
                metric="spearmanr", params=dict(pairs_used=scores["pairs_used"], pairs=scores["pairs"]),
                oov_share=scores["oov_share"])
        else:
            scores = analogy_accuracy(vectors, words, read_analogies(path))
            results[protocol] = dict(
                protocol=protocol, dataset=_dataset_name(path), split="test", value=scores["accuracy"],
                metric="accuracy", params=dict(restrict_vocab=ANALOGY_RESTRICT_VOCAB,
                                               questions_used=scores["questions_used"], questions=scores["questions"]),
                coverage=scores["coverage"], sections=scores["sections"])
    for protocol in [p for p, entry in results.items() if not math.isfinite(entry["value"])]:
        entry = results.pop(protocol)
        print(f"{protocol} not scored: the vocabulary covers too little of {entry['dataset']} "
              f"({entry['params']})")
    return results


def load_word_vectors(model: str) -> tuple[np.ndarray, list[str]]:
    """The vectors and words of an hf-ssl word2vec folder (its model and tokenizer) or of a word2vec text file."""
    if os.path.isfile(model):
        return read_word2vec_format(model)
    from transformers import AutoModel, AutoTokenizer

    try:
        loaded = AutoModel.from_pretrained(model, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as e:
        raise HfSslError(f"cannot load word vectors from {model}: {first_line(e)}") from None
    if loaded.config.model_type != Word2VecConfig.model_type:
        raise HfSslError(f"{model} is a {type(loaded).__name__}, not a word2vec model")
    vectors = loaded.word_vectors().detach().float().numpy()
    words = tokenizer.convert_ids_to_tokens(list(range(len(vectors))))
    known = [i for i, w in enumerate(words) if w != tokenizer.unk_token]  # the untrained unknown-word row
    return vectors[known], [words[i] for i in known]


def read_word2vec_format(path: str) -> tuple[np.ndarray, list[str]]:
    """The word2vec text format: a `count dim` header, then `word v1 ... vdim` per line."""
    lines = _read_lines(path)
    try:
        count, dim = (int(x) for x in lines[0].split())
        words, rows = [], []
        for line in lines[1:count + 1]:
            word, *values = line.rstrip().split(" ")
            words.append(word)
            rows.append(np.asarray(values, dtype=np.float32))
        vectors = np.stack(rows)
        if vectors.shape != (count, dim):
            raise ValueError(f"{vectors.shape[0]} vectors of {vectors.shape[1]} values, the header says {count} x {dim}")
    except (ValueError, IndexError) as e:
        raise HfSslError(f"{path} is not in the word2vec text format: {first_line(e)}") from None
    return vectors, words


def _dataset_name(path: str) -> str:
    name = Path(path).stem
    return {"wordsim353": "wordsim353", "questions-words": "google-analogies"}.get(name, name)
