"""Tests of the few-shot and fine-tune protocols and of the `evaluate` metric modules shipped in the package."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from hf_ssl.data.datasets import ImageDataset
from hf_ssl.errors import HfSslError
from hf_ssl.evaluation.few_shot import few_shot, sample_few_shot_indices

from conftest import run_cli, tiny_backbone_config

# ----------------------------------------------------------------------------- few-shot sampling


def test_few_shot_sampling_takes_exactly_k_per_class_uniformly():
    # class sizes 5, 12, 40 (class 3 absent from the labels but below num_classes would be an error, tested below)
    labels = torch.tensor([0] * 5 + [1] * 12 + [2] * 40)[torch.randperm(57, generator=torch.Generator().manual_seed(1))]
    shots, draws = 3, 3000
    counts = torch.zeros(57)
    for draw in range(draws):
        chosen = sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(draw))
        assert chosen.unique().numel() == chosen.numel() == 3 * shots
        assert torch.bincount(labels[chosen], minlength=3).tolist() == [shots] * 3
        counts[chosen] += 1
    # each example of class c is drawn with probability shots / n_c; binomial standard error, 5 sigma
    class_size = torch.bincount(labels).float()[labels]
    p = shots / class_size
    z = (counts / draws - p) / torch.sqrt(p * (1 - p) / draws).clamp_min(1e-12)
    assert z.abs().max() < 5, z.abs().max()
    assert counts[class_size == 5].min() > 0.5 * draws  # 3 of 5: every one in 60% of the draws
    # different seeds give different subsets, the same seed the same one
    first = sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(0))
    assert torch.equal(first, sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, sample_few_shot_indices(labels, shots, 3, torch.Generator().manual_seed(1)))


def test_few_shot_too_many_shots_is_one_clear_error():
    labels = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(HfSslError, match="class 1 has 2"):
        sample_few_shot_indices(labels, 3, 2, torch.Generator().manual_seed(0))
    with pytest.raises(HfSslError, match="class 2 has 0"):
        sample_few_shot_indices(labels, 1, 3, torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------- few-shot accuracy


def _gaussian_classes(num_classes=4, dim=8, n_train=200, n_test=300, spread=1.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2 * torch.randn(num_classes, dim, generator=g)
    y_train = torch.arange(n_train) % num_classes
    y_test = torch.randint(0, num_classes, (n_test,), generator=g)
    x_train = centers[y_train] + spread * torch.randn(n_train, dim, generator=g)
    x_test = centers[y_test] + spread * torch.randn(n_test, dim, generator=g)
    return x_train, y_train, x_test, y_test


def test_few_shot_matches_sklearn_on_the_same_subsets():
    x_train, y_train, x_test, y_test = _gaussian_classes()
    shots, episodes, wd = 5, 3, 1e-2
    result = few_shot(x_train, y_train, x_test, y_test, 4, shots=shots, episodes=episodes, weight_decay=wd, seed=7)
    assert result.episodes == episodes and len(result.episode_accuracies) == episodes
    reference = []
    for episode in range(episodes):
        subset = sample_few_shot_indices(y_train, shots, 4, torch.Generator().manual_seed(7 + episode)).numpy()
        x, y = x_train.double().numpy()[subset], y_train.numpy()[subset]
        mean, std = x_train.double().numpy().mean(0), x_train.double().numpy().std(0)  # the whole pool's
        n = len(y)
        # mean CE + wd ||W||^2  ==  sklearn's  0.5 ||W||^2 + C * sum CE  with C = 1 / (2 wd n)
        clf = LogisticRegression(C=1 / (2 * wd * n), tol=1e-10, max_iter=10000).fit((x - mean) / std, y)
        predictions = clf.predict((x_test.double().numpy() - mean) / std)
        reference.append(float((predictions == y_test.numpy()).mean()))
    for got, expected in zip(result.episode_accuracies, reference):
        assert abs(got - expected) <= 1 / len(y_test) + 1e-12, (result.episode_accuracies, reference)
    assert math.isclose(result.accuracy, float(np.mean(result.episode_accuracies)))
    assert math.isclose(result.std, float(np.std(result.episode_accuracies, ddof=1)))
    assert len(set(reference)) > 1  # the episodes really differ


def test_few_shot_separable_is_perfect_and_random_labels_are_at_chance():
    x_train, y_train, x_test, y_test = _gaussian_classes(spread=0.05)
    assert few_shot(x_train, y_train, x_test, y_test, 4, shots=2, episodes=2).accuracy == 1.0
    shuffled = y_train[torch.randperm(len(y_train), generator=torch.Generator().manual_seed(3))]
    x_noise = torch.randn(2000, 8, generator=torch.Generator().manual_seed(4))
    y_noise = torch.randint(0, 4, (2000,), generator=torch.Generator().manual_seed(5))
    chance = few_shot(x_train, shuffled, x_noise, y_noise, 4, shots=10, episodes=3).accuracy
    assert abs(chance - 0.25) < 0.05, chance


# ----------------------------------------------------------------------------- fine-tune


def _brightness_images(per_class: int, seed: int, size: int = 16):
    """RGB images whose class is their brightness level (3 classes), with pixel noise: separable, and unchanged in
    kind by a horizontal flip."""
    import PIL.Image

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), per_class)
    rng.shuffle(labels)
    images = [PIL.Image.fromarray(np.clip(50 + 75 * c + rng.integers(-20, 21, (size, size, 3)), 0, 255).astype(np.uint8))
              for c in labels]
    return images, labels


@pytest.fixture(scope="module")
def brightness_dataset():
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["dark", "mid", "light"])})
    splits = {}
    for split, per_class, seed in (("train", 32, 0), ("test", 20, 1)):
        images, labels = _brightness_images(per_class, seed)
        splits[split] = datasets.Dataset.from_dict({"image": images, "label": labels.tolist()}, features=features)
    return ImageDataset(name="brightness", splits=splits, image_column="image", label_column="label",
                        class_names=["dark", "mid", "light"], train_split="train", test_split="test")


@pytest.fixture(scope="module")
def resnet_folder(tmp_path_factory):
    """A randomly initialised tiny ResNet exported as hf-ssl does: native class + its image processor."""
    from transformers import AutoModel

    from hf_ssl.hub.export import image_processor_for

    folder = tmp_path_factory.mktemp("resnet-encoder")
    torch.manual_seed(0)
    AutoModel.from_config(tiny_backbone_config("resnet-test", 16)).save_pretrained(folder)
    image_processor_for(16, [0.5] * 3, [0.25] * 3).save_pretrained(folder)
    return folder


def test_finetune_image_reaches_high_accuracy_and_equals_the_saved_classifier(resnet_folder, brightness_dataset,
                                                                              tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hf_ssl.evaluation.finetune import FinetuneSettings, finetune_image_classifier

    settings = FinetuneSettings(epochs=6, learning_rate=3e-3, batch_size=16)
    entry = finetune_image_classifier(resnet_folder, brightness_dataset, settings, save_to=tmp_path / "classifier")
    assert entry["protocol"] == "finetune" and entry["split"] == "test"
    assert entry["params"]["steps"] == 6 * 96 // 16
    assert entry["value"] >= 0.9, entry
    assert not any(p.name.startswith("checkpoint") for p in resnet_folder.iterdir())  # nothing written there
    # independent evaluation: the saved classifier as plain transformers loads it, its own processor on PIL images
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path / "classifier").eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "classifier")
    test = brightness_dataset.splits["test"]
    with torch.no_grad():
        logits = classifier(**processor(images=list(test["image"]), return_tensors="pt")).logits
    accuracy = float((logits.argmax(-1).numpy() == np.array(test["label"])).mean())
    assert accuracy == entry["value"]
    assert classifier.config.id2label[2] == "light"


def _sentiment_texts(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    words = [["good", "great", "nice", "happy", "fine"], ["bad", "awful", "poor", "sad", "ugly"]]
    filler = ["the", "movie", "was", "very", "really", "plot", "and", "a"]
    labels = rng.integers(0, 2, n).tolist()
    texts = [" ".join(rng.permutation(list(rng.choice(filler, 4)) + list(rng.choice(words[y], 2)))) for y in labels]
    return texts, labels


def _sentiment_csv_folder(folder):
    """A local dataset (train.csv, test.csv) with a text and an integer label column."""
    import csv

    folder.mkdir()
    for split, n, seed in (("train", 96, 0), ("test", 40, 1)):
        texts, labels = _sentiment_texts(n, seed)
        with open(folder / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(zip(texts, labels))
    return folder


def test_finetune_text_encoder_through_the_cli(tmp_path, capsys):
    """An mlm-style export (BertForMaskedLM + fast WordPiece tokenizer) fine-tuned as a sequence classifier on a local
    csv dataset with text and label columns; stdout stays the JSON of the results."""
    from transformers import BertConfig, BertForMaskedLM

    from hf_ssl.cli import main
    from hf_ssl.data.tokenizers import train_wordpiece

    data = _sentiment_csv_folder(tmp_path / "reviews")
    model_dir = tmp_path / "bert"
    tokenizer = train_wordpiece(_sentiment_texts(200, 2)[0], vocab_size=60)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    BertForMaskedLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    main(["evaluate", "--model", str(model_dir), "--dataset", str(data), "--protocol", "finetune", "--epochs", "8",
          "--learning_rate", "3e-3", "--finetune_batch_size", "16"])
    printed = json.loads(capsys.readouterr().out)
    entry = printed["finetune"]
    assert entry["dataset"] == "reviews" and entry["split"] == "test" and entry["params"]["steps"] == 8 * 96 // 16
    assert "horizontal_flip" not in entry["params"]
    assert entry["value"] >= 0.9, entry
    assert json.loads((model_dir / "eval_results.json").read_text())["finetune"]["value"] == entry["value"]


def test_pretrain_runs_the_requested_extra_protocols(tmp_path):
    """`--eval_protocols` reaches the new protocols: few-shot for an image method, finetune (on the exported folder)
    for a text one trained on a labelled corpus; both land in eval_results.json and the card."""
    from hf_ssl.cli import main

    image_out, text_out = tmp_path / "mae", tmp_path / "mlm"
    main(["pretrain", "--method", "mae", "--preset", "tiny", "--max_steps", "2", "--eval_protocols", "knn,few-shot", "--report_to", "none",
          "--output_dir", str(image_out)])
    few = json.loads((image_out / "eval_results.json").read_text())["few-shot"]
    assert few["params"]["shots"] == 10 and len(few["params"]["episode_accuracies"]) == 5 and 0 < few["value"] <= 1
    assert "few-shot linear probe (10 labels per class, mean of 5 episodes)" in (image_out / "README.md").read_text()

    data = _sentiment_csv_folder(tmp_path / "reviews")
    main(["pretrain", "--method", "mlm", "--preset", "tiny", "--dataset", str(data), "--max_steps", "2",
          "--eval_protocols", "fill-mask,finetune", "--output_dir", str(text_out)])
    results = json.loads((text_out / "eval_results.json").read_text())
    assert {"fill-mask", "finetune"} <= set(results) and results["finetune"]["dataset"] == "reviews"
    assert "fine-tuned end to end (3 epochs)" in (text_out / "README.md").read_text()
    assert not any("finetune" in p.name for p in text_out.iterdir())  # Trainer's folder was a removed temporary one


@pytest.mark.parametrize("argv, message", [
    (["--protocol", "knn,semi-supervised"], "unknown protocol 'semi-supervised' for an image encoder"),
    (["--protocol", "few-shot", "--shots", "500"], "class 0 has"),
    (["--protocol", "finetune", "--epochs", "0"], "invalid fine-tuning settings"),
])
def test_evaluate_bad_protocol_input_is_one_line(resnet_folder, capsys, argv, message):
    from hf_ssl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", str(resnet_folder), "--dataset", "digits", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    # transformers' own weight-loading progress bar may precede it; the error itself is the one last line
    assert err.splitlines()[-1].startswith("hf-ssl: error: ") and message in err.splitlines()[-1], err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- evaluate metric modules

_METRIC_SCRIPT = """
import json, sys
import numpy as np
import evaluate
from hf_ssl.metrics import metric_path

data = dict(np.load(sys.argv[1], allow_pickle=False))
words = [str(w) for w in data["words"]]
results = {}
knn = evaluate.load(metric_path("knn"))
results["knn"] = knn.compute(features=data["knn_query"], labels=data["knn_query_labels"], k=3, temperature=0.5,
                             train_features=data["knn_bank"], train_labels=data["knn_bank_labels"])
linear = evaluate.load(metric_path("linear"))
results["linear"] = linear.compute(features=data["sep_test"], labels=data["sep_test_labels"],
                                   train_features=data["sep_train"], train_labels=data["sep_train_labels"])
results["linear_flipped"] = linear.compute(features=data["sep_test"], labels=1 - data["sep_test_labels"],
                                           train_features=data["sep_train"], train_labels=data["sep_train_labels"])
few_shot = evaluate.load(metric_path("few-shot"))
results["few_shot"] = few_shot.compute(features=data["sep_test"], labels=data["sep_test_labels"], shots=5,
                                       episodes=3, train_features=data["sep_train"], train_labels=data["sep_train_labels"])
zero_shot = evaluate.load(metric_path("zero-shot"))
results["zero_shot"] = zero_shot.compute(image_embeddings=data["zs_images"], labels=data["zs_labels"],
                                         class_embeddings=data["zs_classes"])
similarity = evaluate.load(metric_path("word-similarity"))
pairs = [line.split(",") for line in data["pairs"]]
results["word_similarity"] = similarity.compute(word1=[p[0] for p in pairs], word2=[p[1] for p in pairs],
                                                score=[float(p[2]) for p in pairs], vectors=data["vectors"], words=words)
analogy = evaluate.load(metric_path("analogy"))
questions = [line.split() for line in data["questions"]]
results["analogy"] = analogy.compute(a=[q[0] for q in questions], b=[q[1] for q in questions],
                                     c=[q[2] for q in questions], d=[q[3] for q in questions],
                                     vectors=data["vectors"], words=words)
fill_mask = evaluate.load(metric_path("fill-mask"))
texts = [str(t) for t in data["texts"]]
results["fill_mask_hit"] = fill_mask.compute(text=texts, model_id=sys.argv[2])
results["fill_mask_miss"] = fill_mask.compute(text=texts, model_id=sys.argv[3])
print(json.dumps(results))
"""


def _knn_by_hand(bank, bank_labels, queries, k, temperature):
    predictions = []
    for q in queries.tolist():
        sims = []
        for row in bank.tolist():
            sims.append(sum(a * b for a, b in zip(q, row)) / math.sqrt(sum(a * a for a in q) * sum(b * b for b in row)))
        votes = {}
        for i in sorted(range(len(sims)), key=lambda i: -sims[i])[:k]:
            votes[int(bank_labels[i])] = votes.get(int(bank_labels[i]), 0.0) + math.exp(sims[i] / temperature)
        predictions.append(max(votes, key=votes.get))
    return predictions


def _masked_lm_folder(folder, tokenizer, favoured_token: str):
    """A tiny BERT masked LM whose output bias makes it always predict `favoured_token`."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BertForMaskedLM(config)
    with torch.no_grad():
        model.cls.predictions.bias.zero_()
        model.cls.predictions.bias[tokenizer.convert_tokens_to_ids(favoured_token)] = 1e4
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_metric_modules_load_offline_by_path_and_match_independent_computations(tmp_path):
    from hf_ssl.data.tokenizers import train_wordpiece

    g = torch.Generator().manual_seed(0)
    # kNN: overlapping clusters, so votes are mixed
    knn_bank_labels = torch.arange(30) % 3
    knn_bank = torch.randn(3, 4, generator=g)[knn_bank_labels] + torch.randn(30, 4, generator=g)
    knn_query_labels = torch.arange(12) % 3
    knn_query = torch.randn(3, 4, generator=g)[knn_query_labels] + torch.randn(12, 4, generator=g)
    # separable: class = sign of the first coordinate, with a margin
    sep_train_labels = torch.arange(40) % 2
    # after standardisation every dim has unit variance: the first is two tight clusters at about +-1, the others noise
    sep_train = torch.randn(40, 5, generator=g)
    sep_train[:, 0] = (2 * sep_train_labels - 1) * (3 + 0.1 * sep_train[:, 0].abs())
    sep_test_labels = torch.arange(30) % 2
    sep_test = torch.randn(30, 5, generator=g)
    sep_test[:, 0] = (2 * sep_test_labels - 1) * (3 + 0.1 * sep_test[:, 0].abs())
    # zero-shot: class c's text embedding is the basis vector e_c; images near one of them
    zs_classes = torch.eye(6, 8)
    zs_labels = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    zs_images = torch.randn(8, 8, generator=g)
    # word vectors: queen = king - man + woman exactly, the other answers wrong or out of the vocabulary
    words = ["king", "man", "woman", "queen", "paris", "france", "rome", "italy", "apple"]
    vectors = torch.randn(9, 6, generator=g)
    vectors[3] = vectors[0] - vectors[1] + vectors[2]
    pairs = ["king,queen,9", "man,woman,7", "paris,rome,5", "france,apple,1", "king,zebra,3"]
    questions = ["man king woman queen", "king man queen woman", "france paris italy apple", "man king woman zebra"]
    texts = ["alpha alpha alpha alpha alpha alpha alpha alpha"] * 20
    tokenizer = train_wordpiece(texts + ["beta gamma"], vocab_size=40)
    hit = _masked_lm_folder(tmp_path / "hit", tokenizer, "alpha")
    miss = _masked_lm_folder(tmp_path / "miss", tokenizer, "beta")
    arrays = dict(knn_bank=knn_bank, knn_bank_labels=knn_bank_labels, knn_query=knn_query,
                  knn_query_labels=knn_query_labels, sep_train=sep_train, sep_train_labels=sep_train_labels,
                  sep_test=sep_test, sep_test_labels=sep_test_labels, zs_classes=zs_classes, zs_labels=zs_labels,
                  zs_images=zs_images, vectors=vectors)
    np.savez(tmp_path / "data.npz", **{k: v.numpy() for k, v in arrays.items()}, words=np.array(words),
             pairs=np.array(pairs), questions=np.array(questions), texts=np.array(texts))

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "HF_HOME": str(tmp_path / "hf_home")}
    run = subprocess.run([sys.executable, "-c", _METRIC_SCRIPT, str(tmp_path / "data.npz"), hit, miss],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr[-5000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])

    expected_knn = _knn_by_hand(knn_bank, knn_bank_labels, knn_query, k=3, temperature=0.5)
    assert results["knn"]["accuracy"] == pytest.approx(np.mean(np.array(expected_knn) == knn_query_labels.numpy()))
    assert 0 < results["knn"]["accuracy"] < 1  # a case where the votes matter
    assert results["linear"]["accuracy"] == 1.0 and results["linear_flipped"]["accuracy"] == 0.0
    assert results["few_shot"] == {"accuracy": 1.0, "std": 0.0}
    unit = F.normalize(zs_images, dim=1) @ F.normalize(zs_classes, dim=1).T
    top5 = unit.topk(5, dim=1).indices
    assert results["zero_shot"]["top1"] == pytest.approx((unit.argmax(1) == zs_labels).float().mean().item())
    assert results["zero_shot"]["top5"] == pytest.approx((top5 == zs_labels[:, None]).any(1).float().mean().item())
    # word similarity: 4 of 5 pairs known; rho of their cosines against the human scores, ranked by hand
    index = {w: i for i, w in enumerate(words)}
    known = [p.split(",") for p in pairs if all(w in index for w in p.split(",")[:2])]
    cosines = [F.cosine_similarity(vectors[index[a]], vectors[index[b]], dim=0).item() for a, b, _ in known]
    rank = lambda values: np.argsort(np.argsort(values))  # noqa: E731  (no ties here)
    rc, rh = rank(cosines), rank([float(s) for *_, s in known])
    n = len(known)
    rho = 1 - 6 * float(((rc - rh) ** 2).sum()) / (n * (n * n - 1))
    assert results["word_similarity"]["pairs_used"] == 4
    assert results["word_similarity"]["spearman"] == pytest.approx(rho)
    # analogy: 3 questions in the vocabulary; the first is exact, the others checked by brute force
    unit_words = F.normalize(vectors, dim=1)
    correct = []
    for a, b, c, d in (q.split() for q in questions[:3]):
        scores = unit_words @ (unit_words[index[b]] - unit_words[index[a]] + unit_words[index[c]])
        scores[[index[a], index[b], index[c]]] = -float("inf")
        correct.append(words[int(scores.argmax())] == d)
    assert correct[0] and results["analogy"]["questions_used"] == 3
    assert results["analogy"]["accuracy"] == pytest.approx(np.mean(correct))
    # fill-mask: every masked token is "alpha"; the model that always says "alpha" is always right, the other never
    assert results["fill_mask_hit"]["accuracy"] == 1.0 and results["fill_mask_miss"]["accuracy"] == 0.0
    assert results["fill_mask_hit"]["num_predictions"] > 0
    assert results["fill_mask_miss"]["baseline_accuracy"] == 1.0
