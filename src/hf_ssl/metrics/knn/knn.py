"""Weighted kNN accuracy of frozen features, as an `evaluate` metric (calls `hf_ssl.evaluation.knn`)."""

import datasets
import evaluate
import numpy as np

from hf_ssl.evaluation.knn import knn_accuracy

_CITATION = """\
@inproceedings{wu2018unsupervised,
  title={Unsupervised Feature Learning via Non-Parametric Instance Discrimination},
  author={Wu, Zhirong and Xiong, Yuanjun and Yu, Stella X. and Lin, Dahua},
  booktitle={CVPR},
  year={2018}
}
"""

_DESCRIPTION = """\
Top-1 accuracy of the weighted k-nearest-neighbour classifier of Wu et al. (2018), the kNN monitor of SSL
(InstDisc, DINO): features are L2-normalised, the k most cosine-similar training features vote for their label
with weight exp(similarity / temperature) (plain majority vote with temperature=None).
"""

_KWARGS_DESCRIPTION = """
Args:
    features (`list` of `list` of `float`): the (frozen) features of the examples to classify, one row each.
    labels (`list` of `int`): their true labels.
    train_features (`array` of shape (N, D)): the memory bank, features of the labelled training examples.
    train_labels (`array` of shape (N,)): their labels.
    num_classes (`int`, optional): defaults to 1 + the largest label seen.
    k (`int`, defaults to 20): neighbours.
    temperature (`float` or `None`, defaults to 0.07): vote temperature; `None` for a majority vote.
Returns:
    accuracy (`float`): in [0, 1].
Examples:
    >>> knn = evaluate.load(hf_ssl.metrics.metric_path("knn"))
    >>> knn.compute(features=[[1.0, 0.1]], labels=[0], train_features=[[1.0, 0.0], [0.0, 1.0]], train_labels=[0, 1], k=1)
    {'accuracy': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Knn(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"features": datasets.Sequence(datasets.Value("float32")),
                                        "labels": datasets.Value("int64")}),
            reference_urls=["https://arxiv.org/abs/1805.01978"],
        )

    def _compute(self, features, labels, train_features, train_labels, num_classes=None, k=20, temperature=0.07):
        features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.int64)
        train_features = np.asarray(train_features, dtype=np.float32)
        train_labels = np.asarray(train_labels, dtype=np.int64)
        num_classes = num_classes or int(max(labels.max(), train_labels.max())) + 1
        return {"accuracy": knn_accuracy(train_features, train_labels, features, labels, num_classes, k=k,
                                         temperature=temperature)}
