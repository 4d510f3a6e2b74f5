"""Word-analogy accuracy (3CosAdd) of word vectors, as an `evaluate` metric (calls
`hf_ssl.evaluation.word_vectors.analogy_accuracy`)."""

import datasets
import evaluate
import numpy as np

from hf_ssl.evaluation.word_vectors import ANALOGY_RESTRICT_VOCAB, analogy_accuracy

_CITATION = """\
@inproceedings{mikolov2013efficient,
  title={Efficient Estimation of Word Representations in Vector Space},
  author={Mikolov, Tomas and Chen, Kai and Corrado, Greg and Dean, Jeffrey},
  booktitle={ICLR Workshop},
  year={2013}
}
"""

_DESCRIPTION = """\
The word-analogy protocol of word2vec (Mikolov et al. 2013): "a is to b as c is to d" is answered correctly when
the word whose vector has the highest cosine similarity with b - a + c (a, b and c excluded) is d (3CosAdd). Only
questions whose four words are among the `restrict_vocab` first (most frequent) words count; those words are also
the only candidate answers.
"""

_KWARGS_DESCRIPTION = """
Args:
    a, b, c, d (`list` of `str`): the questions, one word each.
    vectors (`array` of shape (V, D)): the word vectors, most frequent word first.
    words (`list` of `str`): the word of each row of `vectors`.
    restrict_vocab (`int`, defaults to 30000): candidate answers.
Returns:
    accuracy (`float`): in [0, 1] over the questions used (nan if none).
    questions_used (`int`), coverage (`float`): questions in the vocabulary, and their share.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Analogy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({name: datasets.Value("string") for name in ("a", "b", "c", "d")}),
            reference_urls=["https://arxiv.org/abs/1301.3781"],
        )

    def _compute(self, a, b, c, d, vectors, words, restrict_vocab=ANALOGY_RESTRICT_VOCAB):
        questions = [("", *question) for question in zip(a, b, c, d)]
        scores = analogy_accuracy(np.asarray(vectors), list(words), questions, restrict_vocab=restrict_vocab)
        return {"accuracy": scores["accuracy"], "questions_used": scores["questions_used"],
                "coverage": scores["coverage"]}
