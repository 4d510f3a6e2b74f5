"""Zero-shot classification accuracy of image-text embeddings, as an `evaluate` metric (calls
`hf_ssl.evaluation.image_text.zero_shot_accuracy`)."""

import datasets
import evaluate
import numpy as np

from hf_ssl.evaluation.image_text import zero_shot_accuracy

_CITATION = """\
@inproceedings{radford2021learning,
  title={Learning Transferable Visual Models From Natural Language Supervision},
  author={Radford, Alec and Kim, Jong Wook and Hallacy, Chris and Ramesh, Aditya and Goh, Gabriel and
          Agarwal, Sandhini and Sastry, Girish and Askell, Amanda and Mishkin, Pamela and Clark, Jack and
          Krueger, Gretchen and Sutskever, Ilya},
  booktitle={ICML},
  year={2021}
}
"""

_DESCRIPTION = """\
CLIP's zero-shot classification (Radford et al. 2021, Sec. 3.1): each image is assigned the class whose text
embedding (in CLIP, the re-normalised mean of the embeddings of prompts filled with the class name) has the highest
cosine similarity with the image embedding. Top-1 and top-5 accuracy.
"""

_KWARGS_DESCRIPTION = """
Args:
    image_embeddings (`list` of `list` of `float`): one embedding per image (normalised here).
    labels (`list` of `int`): the true class of each image.
    class_embeddings (`array` of shape (C, D)): one text embedding per class, row c for label c.
Returns:
    top1 (`float`), top5 (`float`): accuracies in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ZeroShot(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"image_embeddings": datasets.Sequence(datasets.Value("float32")),
                                        "labels": datasets.Value("int64")}),
            reference_urls=["https://arxiv.org/abs/2103.00020"],
        )

    def _compute(self, image_embeddings, labels, class_embeddings):
        top = zero_shot_accuracy(np.asarray(image_embeddings, dtype=np.float32), np.asarray(class_embeddings,
                                 dtype=np.float32), np.asarray(labels, dtype=np.int64), (1, 5))
        return {"top1": top[1], "top5": top[5]}
