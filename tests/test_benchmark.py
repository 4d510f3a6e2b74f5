"""`hf-ssl benchmark`: one run measures the method's step beside its reference implementation, its data pipeline,
`hf-ssl pretrain` end to end and peak memory; the two implementations of MAE count the same FLOPs."""

import json

from conftest import run_cli, shape_images


def test_benchmark_measures_mae_beside_its_reference(tmp_path):
    shape_images(tmp_path, {"train": 4})
    dataset = f"imagefolder:{tmp_path}"  # not the method's default (digits): every part must time this one
    result = run_cli("benchmark", "--method", "mae", "--preset", "tiny", "--dataset", dataset, "--steps", "2",
                     "--e2e_steps", "2", "--reference", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    ours, reference, *fp32 = report["model_step"]
    assert ours["name"] == "hf-ssl MAE" and reference["name"] == "ViTMAEForPreTraining"
    # in bf16 (this CPU's default for ViTs, when it has bf16) the reference is timed in fp32 too
    assert [t["name"] for t in fp32] == (["ViTMAEForPreTraining (fp32)"] if report["precision"] != "fp32" else [])
    # the same architecture and weights: the same work per step, counted independently of either implementation
    assert ours["flops_per_step"] == reference["flops_per_step"] > 0
    for timing in (ours, reference, *fp32):
        assert timing["seconds_per_step"] > 0 and 0 < timing["mfu"] < 1.5
        assert abs(timing["examples_per_second"] * timing["seconds_per_step"] - report["batch_size"]) < 1e-6
    assert 0 < report["data"]["share_if_not_overlapped"] < 1
    assert report["end_to_end"]["dataset"] == report["dataset"] == "imagefolder"
    assert report["end_to_end"]["examples_per_second"] > 0 and 0 <= report["end_to_end"]["data_wait_share"] <= 1
    assert report["peak_memory_mb"] > 0 and report["matmul_peak_flops"] > 1e8


def test_benchmark_without_a_reference_is_one_line():
    result = run_cli("benchmark", "--method", "simclr", "--preset", "tiny", "--reference")
    assert result.returncode == 2
    expected = "hf-ssl: error: simclr has no reference implementation to compare with (--reference)"
    assert result.stderr.strip() == expected



def test_benchmark_trains_word2vec_beside_gensim(tmp_path):
    """word2vec's reference trains end to end (gensim's Word2Vec, `Method.reference_training`): it and `hf-ssl
    pretrain` train the preset's epochs on the same corpus, on the corpus's in-vocabulary words x epochs, counted
    here (the tiny preset's min_count 1: every word of the training split)."""
    import random
    import re

    import pytest

    pytest.importorskip("gensim")
    import hf_ssl  # noqa: F401  (registers the methods)
    from hf_ssl.benchmark import training_beside_reference
    from hf_ssl.data.text import load_text_corpus
    from hf_ssl.modalities import DataSpec, get_modality
    from hf_ssl.registry import get_method
    from hf_ssl.training.pretrain import PretrainArguments, build_config

    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    documents = [" ".join(rng.choice(words) for _ in range(25)) for _ in range(200)]  # 5,000 words: 3 tiny steps
    (tmp_path / "corpus.txt").write_text("\n\n".join(documents))
    spec = f"text:{tmp_path}/*.txt"
    method = get_method("word2vec")
    config, _ = build_config(method, PretrainArguments(method="word2vec", preset="tiny", dataset=spec), {})
    corpus = get_modality(method.modality).load_dataset(DataSpec(spec))
    training = training_beside_reference(method, "tiny", spec, config, corpus, threads=2)
    ours, reference = training["runs"]
    assert ours["name"] == "hf-ssl word2vec" and reference["name"] == "gensim Word2Vec (workers=2)"
    train_words = sum(len(re.findall(r"[^\W_]+", text.lower())) for text in load_text_corpus(spec)["train"]["text"])
    assert training["unit"] == "words" and training["epochs"] == 1 and training["units"] == train_words
    for run in (ours, reference):
        assert run["seconds"] > 0 and run["words_per_second"] * run["seconds"] == pytest.approx(train_words)
    assert training["speed_ratio"] == pytest.approx(ours["words_per_second"] / reference["words_per_second"])
