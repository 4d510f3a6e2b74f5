"""Word-similarity correlation of word vectors, as an `evaluate` metric (calls
`hf_ssl.evaluation.word_vectors.word_similarity`)."""

import datasets
import evaluate
import numpy as np

from hf_ssl.evaluation.word_vectors import word_similarity

_CITATION = """\
@article{finkelstein2002placing,
  title={Placing Search in Context: The Concept Revisited},
  author={Finkelstein, Lev and Gabrilovich, Evgeniy and Matias, Yossi and Rivlin, Ehud and Solan, Zach and
          Wolfman, Gadi and Ruppin, Eytan},
  journal={ACM Transactions on Information Systems},
  volume={20}, number={1}, pages={116--131},
  year={2002}
}
"""

_DESCRIPTION = """\
Spearman's rank correlation between the cosine similarity of two words' vectors and human similarity judgements
(the WordSim-353 protocol of word2vec evaluations), over the pairs whose two words are both in the vocabulary.
"""

_KWARGS_DESCRIPTION = """
Args:
    word1 (`list` of `str`), word2 (`list` of `str`): the word pairs.
    score (`list` of `float`): the human similarity score of each pair.
    vectors (`array` of shape (V, D)): the word vectors.
    words (`list` of `str`): the word of each row of `vectors`.
Returns:
    spearman (`float`): Spearman's rho (nan with fewer than 3 pairs in the vocabulary).
    pairs_used (`int`): pairs in the vocabulary.
    oov_share (`float`): share of pairs left out.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WordSimilarity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"word1": datasets.Value("string"), "word2": datasets.Value("string"),
                                        "score": datasets.Value("float64")}),
            reference_urls=["https://gabrilovich.com/resources/data/wordsim353/wordsim353.html"],
        )

    def _compute(self, word1, word2, score, vectors, words):
        scores = word_similarity(np.asarray(vectors), list(words), list(zip(word1, word2, score)))
        return {"spearman": scores["spearman"], "pairs_used": scores["pairs_used"], "oov_share": scores["oov_share"]}
