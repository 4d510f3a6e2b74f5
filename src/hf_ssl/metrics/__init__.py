"""`evaluate` metric modules of the hf-ssl protocols, shipped inside the package.

Each folder holds a same-named script with an :class:`evaluate.Metric` subclass that calls the package's own
implementation (imported absolutely from ``hf_ssl``: `evaluate.load` copies only the script into its modules cache,
so relative imports would not resolve). Offline, where `evaluate.load("accuracy")` would need the Hub::

    import evaluate
    from hf_ssl.metrics import metric_path

    knn = evaluate.load(metric_path("knn"))
    knn.compute(features=test_features, labels=test_labels, train_features=bank, train_labels=bank_labels)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HfSslError

# protocol name (as `hf-ssl evaluate --protocol` spells it) -> metric folder
METRICS = {
    "knn": "knn", "linear": "linear_probe", "few-shot": "few_shot", "zero-shot": "zero_shot",
    "word-similarity": "word_similarity", "analogy": "analogy", "fill-mask": "fill_mask",
}


def metric_path(name: str) -> str:
    """The folder of the metric module for a protocol (``"knn"``, ``"few-shot"``/``"few_shot"``, ...), to pass to
    ``evaluate.load``."""
    folder = METRICS.get(name, name if name in METRICS.values() else None)
    if folder is None:
        raise HfSslError(f"no metric module '{name}' (available: {', '.join(METRICS)})")
    return str(Path(__file__).resolve().parent / folder)
