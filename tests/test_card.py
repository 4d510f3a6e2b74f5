"""The model card's front matter, as the Hub reads it: `huggingface_hub.ModelCard` parses it, and it holds the
measured results, one model-index entry per protocol and split, with the datasets named by their Hub ids."""

import json

import pytest


def _card_from(pretrained_out, tmp_path, **run_info_changes):
    from huggingface_hub import ModelCard

    from hf_ssl.hub.card import write_model_card

    out, _ = pretrained_out
    run_info = {**json.loads((out / "ssl" / "training_info.json").read_text()), **run_info_changes}
    dataset = run_info["dataset"]
    results = {  # measured-looking values; what matters is that each one reaches the card unchanged
        "knn": {"protocol": "knn", "dataset": dataset, "split": "test", "value": 0.81234, "params": {"k": 20}},
        "linear": {"protocol": "linear", "dataset": dataset, "split": "test", "value": 0.85678, "params": {}},
        "few-shot": {"protocol": "few-shot", "dataset": dataset, "split": "test", "value": 0.48,
                     "params": {"shots": 10, "episodes": 5, "std": 0.01234}},
    }
    write_model_card(tmp_path, run_info, results)
    return ModelCard.load(tmp_path / "README.md"), results


def test_every_result_is_one_model_index_entry_with_its_value(pretrained_out, tmp_path):
    card, results = _card_from(pretrained_out, tmp_path)
    # The Hub groups the metrics of one task, dataset and split into one result; huggingface_hub reads them back as
    # one EvalResult per metric, i.e. per protocol and split.
    parsed = card.data.eval_results
    found = {(r.metric_name.split(" ")[0], r.dataset_name, r.dataset_split, r.metric_type, r.metric_value) for r in parsed}
    assert found == {("kNN", "digits", "test", "accuracy", 0.8123), ("linear", "digits", "test", "accuracy", 0.8568),
                     ("few-shot", "digits", "test", "accuracy", 0.48)}
    assert all(r.task_type == "image-classification" for r in parsed)
    # the body's table shows the same numbers
    assert "81.23% |" in card.text and "85.68% |" in card.text
    assert "48.00% ± 1.23 |" in card.text  # few-shot: mean ± std over its episodes


def test_builtin_dataset_is_named_by_its_hub_id_local_data_is_not_listed(pretrained_out, tmp_path):
    card, _ = _card_from(pretrained_out, tmp_path / "fm", dataset="fashion_mnist", dataset_name="fashion_mnist")
    data = card.data.to_dict()
    assert data["datasets"] == ["zalando-datasets/fashion_mnist"]
    assert data["model-index"][0]["results"][0]["dataset"]["type"] == "zalando-datasets/fashion_mnist"
    card, _ = _card_from(pretrained_out, tmp_path / "digits")  # scikit-learn's digits: no Hub original
    assert "datasets" not in card.data.to_dict()
    card, _ = _card_from(pretrained_out, tmp_path / "hub", dataset="someone/their-images", dataset_name="someone/their-images")
    assert card.data.to_dict()["datasets"] == ["someone/their-images"]


@pytest.mark.parametrize("base_model", [None, "sentence-transformers/all-MiniLM-L6-v2"])
def test_required_hub_fields_and_base_model_only_when_continued(pretrained_out, tmp_path, base_model):
    card, _ = _card_from(pretrained_out, tmp_path, base_model=base_model)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "image-feature-extraction"
    assert {"self-supervised", "mae"} <= set(data["tags"])
    assert data.get("base_model") == base_model
