"""Few-shot linear-probe accuracy of frozen features, as an `evaluate` metric (calls `hf_ssl.evaluation.few_shot`)."""

import datasets
import evaluate
import numpy as np

from hf_ssl.evaluation.few_shot import DEFAULT_EPISODES, DEFAULT_FEW_SHOT_WEIGHT_DECAY, DEFAULT_SHOTS, few_shot

_CITATION = """\
@inproceedings{assran2022masked,
  title={Masked Siamese Networks for Label-Efficient Learning},
  author={Assran, Mahmoud and Caron, Mathilde and Misra, Ishan and Bojanowski, Piotr and Bordes, Florian and
          Vincent, Pascal and Joulin, Armand and Rabbat, Michael and Ballas, Nicolas},
  booktitle={ECCV},
  year={2022}
}
"""

_DESCRIPTION = """\
Low-shot linear evaluation: `shots` labelled training examples per class are drawn (uniformly, without replacement
within each class), a logistic-regression head (hf-ssl's L-BFGS linear probe with one fixed L2 strength) is trained
on their frozen features and scored on all the given examples; mean and sample standard deviation over `episodes`
seeded draws.
"""

_KWARGS_DESCRIPTION = """
Args:
    features (`list` of `list` of `float`): the frozen features of the test examples.
    labels (`list` of `int`): their labels.
    train_features (`array` of shape (N, D)): features of the labelled pool the shots are drawn from.
    train_labels (`array` of shape (N,)): their labels; every class needs at least `shots` examples.
    num_classes (`int`, optional): defaults to 1 + the largest label seen.
    shots (`int`, defaults to 10), episodes (`int`, defaults to 5), seed (`int`, defaults to 0),
    weight_decay (`float`, defaults to 1e-2): the head's L2 strength.
Returns:
    accuracy (`float`): mean test accuracy over the episodes, in [0, 1].
    std (`float`): its sample standard deviation over the episodes.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FewShot(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"features": datasets.Sequence(datasets.Value("float32")),
                                        "labels": datasets.Value("int64")}),
            reference_urls=["https://arxiv.org/abs/2204.07141"],
        )

    def _compute(self, features, labels, train_features, train_labels, num_classes=None, shots=DEFAULT_SHOTS,
                 episodes=DEFAULT_EPISODES, seed=0, weight_decay=DEFAULT_FEW_SHOT_WEIGHT_DECAY):
        features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=np.int64)
        train_features = np.asarray(train_features, dtype=np.float32)
        train_labels = np.asarray(train_labels, dtype=np.int64)
        num_classes = num_classes or int(max(labels.max(), train_labels.max())) + 1
        result = few_shot(train_features, train_labels, features, labels, num_classes, shots=shots,
                          episodes=episodes, weight_decay=weight_decay, seed=seed)
        return {"accuracy": result.accuracy, "std": result.std}
