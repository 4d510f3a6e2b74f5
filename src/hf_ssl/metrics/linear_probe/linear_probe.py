"""Linear-probe accuracy of frozen features, as an `evaluate` metric (calls `hf_ssl.evaluation.linear_probe`)."""

import datasets
import evaluate
import numpy as np

from hf_ssl.evaluation.linear_probe import linear_probe

_CITATION = """\
@inproceedings{chen2020simple,
  title={A Simple Framework for Contrastive Learning of Visual Representations},
  author={Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton, Geoffrey},
  booktitle={ICML},
  year={2020}
}
"""

_DESCRIPTION = """\
The linear evaluation protocol (SimCLR, MoCo): an L2-regularised multinomial logistic regression trained on
frozen, standardised training features by full-batch L-BFGS, its L2 strength chosen on a held-out 10% of the
training set, then refitted on all of it; the score is its accuracy on the given examples.
"""

_KWARGS_DESCRIPTION = """
Args:
    features (`list` of `list` of `float`): the frozen features of the test examples.
    labels (`list` of `int`): their labels.
    train_features (`array` of shape (N, D)): features of the labelled training examples.
    train_labels (`array` of shape (N,)): their labels.
    num_classes (`int`, optional): defaults to 1 + the largest label seen.
    weight_decays (`list` of `float`, optional): candidate L2 strengths (default 1e-6 ... 1e-2).
    seed (`int`, defaults to 0): seed of the train/validation split.
Returns:
    accuracy (`float`): test accuracy in [0, 1].
    train_accuracy (`float`): accuracy on the training set.
    weight_decay (`float`): the L2 strength chosen.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LinearProbe(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"features": datasets.Sequence(datasets.Value("float32")),
                                        "labels": datasets.Value("int64")}),
            reference_urls=["https://arxiv.org/abs/2002.05709"],
        )

    def _compute(self, features, labels, train_features, train_labels, num_classes=None, weight_decays=None, seed=0):
        features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.int64)
        train_features = np.asarray(train_features, dtype=np.float32)
        train_labels = np.asarray(train_labels, dtype=np.int64)
        num_classes = num_classes or int(max(labels.max(), train_labels.max())) + 1
        options = {"seed": seed} if weight_decays is None else {"seed": seed, "weight_decays": weight_decays}
        result = linear_probe(train_features, train_labels, features, labels, num_classes, **options)
        return {"accuracy": result.accuracy, "train_accuracy": result.train_accuracy,
                "weight_decay": result.weight_decay}
