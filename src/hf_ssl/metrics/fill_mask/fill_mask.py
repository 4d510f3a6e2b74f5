"""Masked-token accuracy of a masked language model on texts, as an `evaluate` metric (calls
`hf_ssl.evaluation.language_modeling.evaluate_fill_mask`)."""

import datasets
import evaluate

from hf_ssl.evaluation.language_modeling import evaluate_fill_mask, load_language_model

_CITATION = """\
@inproceedings{devlin2019bert,
  title={BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding},
  author={Devlin, Jacob and Chang, Ming-Wei and Lee, Kenton and Toutanova, Kristina},
  booktitle={NAACL},
  year={2019}
}
"""

_DESCRIPTION = """\
Held-out masked-token accuracy: the texts are packed into blocks of the model's length, 15% of the non-special
tokens are chosen with a fixed seed and all of them replaced by the mask token (what `pipeline("fill-mask")` shows a
model), and the score is the top-1 accuracy of the model's predictions of the original tokens. Next to it, the
accuracy of always predicting the most frequent token of `train_texts` on the same positions.
"""

_KWARGS_DESCRIPTION = """
Args:
    text (`list` of `str`): held-out texts.
    model_id (`str`): a masked-LM folder or Hub id with a fast tokenizer (`AutoModelForMaskedLM`).
    train_texts (`list` of `str`, optional): the texts the baseline counts tokens in (default: `text` itself).
    batch_size (`int`, defaults to 64).
Returns:
    accuracy (`float`): masked-token top-1 accuracy in [0, 1].
    baseline_accuracy (`float`): the most-frequent-token baseline on the same positions.
    num_predictions (`int`): masked positions scored.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FillMask(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"text": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/1810.04805"],
        )

    def _compute(self, text, model_id, train_texts=None, batch_size=64):
        model, tokenizer, max_length = load_language_model(model_id, causal=False)
        corpus = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": list(train_texts or text)}),
                                       "test": datasets.Dataset.from_dict({"text": list(text)})})
        results = evaluate_fill_mask(model, tokenizer, corpus, "texts", max_length, batch_size=batch_size)
        return {"accuracy": results["fill-mask"]["value"],
                "baseline_accuracy": results["fill-mask-unigram-baseline"]["value"],
                "num_predictions": results["fill-mask"]["params"]["num_predictions"]}
