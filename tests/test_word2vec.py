"""word2vec: the sampling schemes against their formulas (noise distribution, subsampling, dynamic windows), the
examples on a known sentence, the loss against a float64 loop of the paper's formula, the evaluation protocols
against independent computations, and the CLI export loading with gensim and plain transformers where hf_ssl is
blocked."""

import json
import math
import re

import numpy as np
import pytest
import torch

from conftest import run_cli, run_python

from hf_ssl.data.word_vocabulary import (UNK_TOKEN, WORD_PATTERN, Word2VecTrainingData, WordVocabulary,
                                         cached_vocabulary, concatenate_examples, context_bags, draw_negatives,
                                         encode_corpus, reduced_windows, subsample)
from hf_ssl.errors import HfSslError
from hf_ssl.evaluation.word_vectors import (analogy_accuracy, evaluate_word_vectors, read_analogies, read_word_pairs,
                                            word_similarity)
from hf_ssl.losses.negative_sampling import negative_sampling_loss
from hf_ssl.modeling.word2vec import Word2VecConfig, Word2VecModel

SENTENCES = [
    "The cat sat on the mat. The dog sat on the log!",
    "A cat and a dog: the cat's friend is the dog.",
    "Dogs and cats; mats and logs - the end.",
]


def vocabulary_of(counts: dict[str, int]) -> WordVocabulary:
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return WordVocabulary(words=words, counts=np.array([counts[w] for w in words], dtype=np.int64))


# ------------------------------------------------------------------------------------------------- vocabulary


def test_vocabulary_counts_orders_and_tokenizes_like_the_regex():
    texts = SENTENCES * 3
    vocabulary = WordVocabulary.from_texts(texts, min_count=3)
    reference: dict[str, int] = {}
    for text in texts:
        for word in re.findall(WORD_PATTERN, text.lower()):
            reference[word] = reference.get(word, 0) + 1
    expected = sorted((w for w, c in reference.items() if c >= 3), key=lambda w: (-reference[w], w))
    assert vocabulary.words == expected
    assert vocabulary.counts.tolist() == [reference[w] for w in expected]
    assert vocabulary.words[0] == "the" and "s" in vocabulary.words  # "cat's" splits at the apostrophe

    ids, docs = encode_corpus(vocabulary, texts)
    index = {w: i for i, w in enumerate(vocabulary.words)}
    expected_ids = [index[w] for t in texts for w in re.findall(WORD_PATTERN, t.lower()) if w in index]
    expected_docs = [d for d, t in enumerate(texts) for w in re.findall(WORD_PATTERN, t.lower()) if w in index]
    assert ids.tolist() == expected_ids and docs.tolist() == expected_docs

    tokenizer = vocabulary.tokenizer()
    encoded = tokenizer("The CAT, the zebra")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(encoded) == ["the", "cat", "the", UNK_TOKEN]
    assert encoded[-1] == len(vocabulary)  # the unknown word is last


def test_no_word_reaching_min_count_is_one_clear_error():
    with pytest.raises(HfSslError, match="no word occurs at least min_count=50 times"):
        WordVocabulary.from_texts(SENTENCES, min_count=50)


def test_cached_vocabulary_keeps_word_ids_for_a_resumed_run(tmp_path):
    first, built = cached_vocabulary(str(tmp_path), SENTENCES, min_count=1)
    again, built_again = cached_vocabulary(str(tmp_path), ["completely different words here"], min_count=1)
    assert built and not built_again
    assert again.words == first.words and again.counts.tolist() == first.counts.tolist()


# ------------------------------------------------------------------------------------------- sampling schemes


def test_noise_words_follow_the_unigram_distribution_to_the_three_quarters():
    from scipy.stats import chisquare

    counts = {"a": 1000, "b": 300, "c": 100, "d": 30, "e": 10, "f": 5}
    vocabulary = vocabulary_of(counts)
    expected = np.array([counts[w] ** 0.75 for w in vocabulary.words])
    expected /= expected.sum()
    np.testing.assert_allclose(vocabulary.negative_distribution(0.75), expected)

    cumulative = torch.from_numpy(np.cumsum(vocabulary.negative_distribution(0.75)))
    draws = draw_negatives(cumulative, (200_000,), torch.Generator().manual_seed(0))
    observed = np.bincount(draws.numpy(), minlength=len(counts))
    assert chisquare(observed, expected * draws.numel()).pvalue > 1e-3
    # and clearly not the plain unigram distribution
    unigram = np.array([counts[w] for w in vocabulary.words], dtype=float) / sum(counts.values())
    assert chisquare(observed, unigram * draws.numel()).pvalue < 1e-12


def test_subsampling_keep_probability_formula_and_empirical_rate():
    counts = {"the": 50_000, "of": 10_000, "cat": 500, "mat": 20}
    vocabulary = vocabulary_of(counts)
    sample, total = 1e-3, sum(counts.values())
    keep = vocabulary.keep_probabilities(sample)
    for word, p in zip(vocabulary.words, keep):
        f = counts[word]
        # word2vec.c: ran = (sqrt(cn / (sample * train_words)) + 1) * (sample * train_words) / cn
        reference = min(1.0, (math.sqrt(f / (sample * total)) + 1) * (sample * total) / f)
        assert p == pytest.approx(reference, rel=1e-12)
        # in relative frequencies: sqrt(t / f) + t / f, i.e. the paper's 1 - sqrt(t / f) discard plus t / f kept
        relative = f / total
        assert p == pytest.approx(min(1.0, math.sqrt(sample / relative) + sample / relative), rel=1e-12)
    assert keep[vocabulary.words.index("mat")] == 1.0 and keep[0] < 0.2
    assert np.all(vocabulary.keep_probabilities(0.0) == 1.0)

    n = 100_000
    ids = torch.full((n,), vocabulary.words.index("the"))
    kept = subsample(ids, torch.from_numpy(keep).float(), torch.Generator().manual_seed(1))
    p = keep[0]
    assert abs(kept.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_reduced_windows_are_uniform_on_one_to_window():
    windows = reduced_windows(60_000, 5, torch.Generator().manual_seed(2))
    frequencies = np.bincount(windows.numpy(), minlength=6)[1:] / windows.numel()
    assert windows.min() == 1 and windows.max() == 5
    np.testing.assert_allclose(frequencies, 0.2, atol=0.01)


def test_context_bags_and_skipgram_pairs_on_a_known_sentence():
    ids = torch.tensor([10, 11, 12, 13, 14, 20, 21])
    docs = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    windows = torch.tensor([1, 2, 1, 2, 2, 1, 2])
    bags, mask, centres = context_bags(ids, docs, windows, max_window=2)
    # a plain loop over centres: contexts within the centre's own window and document, offsets -2, -1, 1, 2
    expected_bags, expected_centres = [], []
    for i in range(len(ids)):
        bag = []
        for offset in (-2, -1, 1, 2):
            j = i + offset
            ok = 0 <= j < len(ids) and docs[j] == docs[i] and abs(offset) <= windows[i]
            bag.append(int(ids[j]) if ok else None)
        if any(w is not None for w in bag):
            expected_bags.append(bag)
            expected_centres.append(int(ids[i]))
    assert centres.tolist() == expected_centres
    got = [[int(w) if m else None for w, m in zip(row, row_mask)] for row, row_mask in zip(bags, mask)]
    assert got == expected_bags
    assert got[0] == [None, None, 11, None]  # centre 10, window 1
    assert got[4] == [12, 13, None, None]  # centre 14: its window of 2 stops at the document's end
    # the skip-gram pairs of the bags: (context, centre) for every real context word
    pairs = {(int(w), int(c)) for row, row_mask, c in zip(bags, mask, centres) for w, m in zip(row, row_mask) if m}
    assert pairs == {(w, c) for c, bag in zip(expected_centres, expected_bags) for w in bag if w is not None}
    assert (20, 14) not in pairs and (14, 20) not in pairs  # never across documents


def test_training_examples_resample_each_epoch_and_concatenate():
    vocabulary = WordVocabulary.from_texts(SENTENCES * 20, min_count=1)
    ids, docs = encode_corpus(vocabulary, SENTENCES * 20)
    data = Word2VecTrainingData(ids, docs, vocabulary, window=3, negative=4, sample=1e-2, ns_exponent=0.75,
                                chunk_words=100)
    assert len(data) == math.ceil(len(ids) / 100)
    torch.manual_seed(0)
    first, second = data[0], data[0]
    assert first["input_ids"].shape[1] == 6 and first["negative_ids"].shape[1] == 4
    assert first["target_ids"].shape != second["target_ids"].shape or not torch.equal(first["target_ids"], second["target_ids"])
    batch = concatenate_examples([first, second])
    assert batch["target_ids"].numel() == first["target_ids"].numel() + second["target_ids"].numel()
    assert set(batch) == {"input_ids", "context_mask", "target_ids", "negative_ids"}


# ------------------------------------------------------------------------------------------------------- loss


def loop_loss(inputs, input_mask, target, negatives, negative_mask):
    """-log sigma(u_o . v) - sum_k log sigma(-u_k . v) per real example, summed, in float64 Python loops."""
    def log_sigmoid(x):
        return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))

    total, count = 0.0, 0
    for n in range(inputs.shape[0]):
        for m in range(inputs.shape[1]):
            if not input_mask[n, m]:
                continue
            v = inputs[n, m].tolist()
            dot = lambda u: sum(a * b for a, b in zip(v, u.tolist()))  # noqa: E731
            loss = -log_sigmoid(dot(target[n]))
            for k in range(negatives.shape[1]):
                if negative_mask[n, k]:
                    loss -= log_sigmoid(-dot(negatives[n, k]))
            total += loss
            count += 1
    return total, count


def test_negative_sampling_loss_against_a_float64_loop_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    target = torch.randn(4, 5, generator=g, dtype=torch.float64)
    negatives = torch.randn(4, 2, 5, generator=g, dtype=torch.float64)
    input_mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.bool)
    negative_mask = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    expected, count = loop_loss(inputs, input_mask, target, negatives, negative_mask)
    got = negative_sampling_loss(inputs, target, negatives, input_mask, negative_mask, reduction="sum")
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert negative_sampling_loss(inputs, target, negatives, input_mask, negative_mask, reduction="mean").item() == \
        pytest.approx(expected / count, rel=1e-12)
    # one example per group, (N, D) inputs
    single, _ = loop_loss(inputs[:, :1], torch.ones(4, 1, dtype=torch.bool), target, negatives, torch.ones(4, 2, dtype=torch.bool))
    assert negative_sampling_loss(inputs[:, 0], target, negatives).item() == pytest.approx(single, rel=1e-12)

    def loss(i, t, n):
        return negative_sampling_loss(i, t, n, input_mask[:2, :2], negative_mask[:2], reduction="mean")

    small = (inputs[:2, :2, :3].clone(), target[:2, :3].clone(), negatives[:2, :, :3].clone())
    assert torch.autograd.gradcheck(loss, tuple(t.requires_grad_() for t in small))


@pytest.mark.parametrize("architecture", ["skip-gram", "cbow"])
def test_model_loss_is_the_formula_over_its_examples(architecture):
    torch.manual_seed(0)
    model = Word2VecModel(Word2VecConfig(vocab_size=12, vector_size=6, architecture=architecture)).double()
    with torch.no_grad():
        model.output_embeddings.weight.normal_()  # word2vec starts W' at zero; make the scores non-trivial
    bags = torch.tensor([[1, 2, 0, 0], [3, 4, 5, 6], [7, 0, 0, 8]])
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 1]], dtype=torch.bool)
    targets = torch.tensor([9, 10, 11])
    negatives = torch.tensor([[2, 3], [10, 1], [4, 11]])  # 10 and 11 are the observed words: skipped
    W = model.input_embeddings.weight.detach()
    Wo = model.output_embeddings.weight.detach()
    if architecture == "skip-gram":  # each context word's vector predicts the centre
        inputs, input_mask = W[bags], mask
    else:  # the mean of the real context vectors predicts the centre
        inputs = torch.stack([W[b[m]].mean(0) for b, m in zip(bags, mask)]).unsqueeze(1)
        input_mask = torch.ones(3, 1, dtype=torch.bool)
    expected, count = loop_loss(inputs, input_mask, Wo[targets], Wo[negatives], negatives != targets[:, None])
    output = model(input_ids=bags, context_mask=mask, target_ids=targets, negative_ids=negatives)
    assert output.loss.item() == pytest.approx(expected / count, rel=1e-10)
    assert count == (8 if architecture == "skip-gram" else 3)


def test_initialisation_is_word2vec_c():
    model = Word2VecModel(Word2VecConfig(vocab_size=50, vector_size=10))
    assert torch.all(model.output_embeddings.weight == 0)
    weights = model.input_embeddings.weight
    assert weights.abs().max() <= 0.05 and weights.std() > 0.01


def test_config_checks_name_the_bad_value():
    with pytest.raises(Exception, match="architecture must be one of skip-gram, cbow"):
        Word2VecConfig(architecture="glove")
    with pytest.raises(Exception, match="negative must be >= 1"):
        Word2VecConfig(negative=0)


# ------------------------------------------------------------------------------------------------- evaluation


def rank(values):
    """Average ranks (1-based), ties sharing their mean rank, by a plain loop."""
    ranks = [0.0] * len(values)
    for i, v in enumerate(values):
        below = sum(1 for w in values if w < v)
        equal = sum(1 for w in values if w == v)
        ranks[i] = below + (equal + 1) / 2
    return ranks


def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def test_word_similarity_is_spearman_over_known_pairs(tmp_path):
    words = ["king", "queen", "man", "woman", "apple", "pear"]
    vectors = np.random.default_rng(0).normal(size=(6, 4))
    path = tmp_path / "pairs.tsv"
    path.write_text("# comment line\nKing\tqueen\t8.5\nman\twoman\t8.0\napple\tpear\t7.0\nking\tapple\t1.0\n"
                    "queen,pear,2.0\nman,unicorn,5.0\nwoman\tapple\t2.0\n", encoding="utf-8")
    pairs = read_word_pairs(str(path))
    assert len(pairs) == 7 and pairs[0] == ("king", "queen", 8.5)
    result = word_similarity(vectors, words, pairs)
    index = {w: i for i, w in enumerate(words)}
    known = [(a, b, s) for a, b, s in pairs if a in index and b in index]
    cosines = []
    for a, b, _ in known:
        u, v = vectors[index[a]], vectors[index[b]]
        cosines.append(sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v)))
    expected = pearson(rank(cosines), rank([s for *_, s in known]))
    assert result["spearman"] == pytest.approx(expected, abs=1e-12)
    assert result["pairs_used"] == 6 and result["oov_share"] == pytest.approx(1 / 7)


def test_analogy_is_3cosadd_against_brute_force(tmp_path):
    rng = np.random.default_rng(1)
    words = ["man", "woman", "king", "queen", "boy", "girl", "prince", "princess", "apple", "rare"]
    vectors = rng.normal(size=(len(words), 5))
    gender = rng.normal(size=5)
    for male, female in (("man", "woman"), ("king", "queen"), ("boy", "girl"), ("prince", "princess")):
        vectors[words.index(female)] = vectors[words.index(male)] + gender + 0.3 * rng.normal(size=5)
    path = tmp_path / "questions.txt"
    path.write_text(": family\nman woman king queen\nboy girl prince princess\nking queen man woman\n"
                    "man woman boy unicorn\n: other\nman woman apple rare\nman woman king rare\n", encoding="utf-8")
    questions = read_analogies(str(path))
    assert len(questions) == 6 and questions[4][0] == "other"

    def brute_force(restrict):
        candidates = words[:restrict]
        unit = {w: vectors[words.index(w)] / np.linalg.norm(vectors[words.index(w)]) for w in candidates}
        correct = used = 0
        for _, a, b, c, d in questions:
            if not all(w in unit for w in (a, b, c, d)):
                continue
            used += 1
            query = unit[b] - unit[a] + unit[c]
            best, best_score = None, -np.inf
            for w in candidates:
                if w in (a, b, c):
                    continue
                score = float(query @ unit[w]) / float(np.linalg.norm(query))
                if score > best_score:
                    best, best_score = w, score
            correct += best == d
        return correct, used

    for restrict in (len(words), 8):
        result = analogy_accuracy(vectors, words, questions, restrict_vocab=restrict)
        correct, used = brute_force(restrict)
        assert result["questions_used"] == used and result["correct"] == correct
        assert result["accuracy"] == pytest.approx(correct / used)
        assert result["coverage"] == pytest.approx(used / len(questions))
    assert analogy_accuracy(vectors, words, questions, restrict_vocab=8)["questions_used"] == 3  # "rare" is cut


def test_missing_protocol_files_are_one_line_errors(tmp_path):
    with pytest.raises(HfSslError, match="word-similarity file .*missing.tsv does not exist"):
        evaluate_word_vectors(np.zeros((1, 2)), ["a"], ["word-similarity"], pairs_file=str(tmp_path / "missing.tsv"))
    bad = tmp_path / "bad.txt"
    bad.write_text("one two three\n", encoding="utf-8")
    with pytest.raises(HfSslError, match="line 1 is not an analogy"):
        read_analogies(str(bad))


# ------------------------------------------------------------------------------------------ CLI and the export


@pytest.fixture(scope="module")
def word2vec_out(tmp_path_factory):
    from hf_ssl.data.text import python_docstrings

    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / "docs.txt").write_text("\n\n".join(python_docstrings()[:150]), encoding="utf-8")
    out = tmp_path_factory.mktemp("runs") / "word2vec"
    result = run_cli("pretrain", "--method", "word2vec", "--preset", "tiny", "--dataset", f"text:{corpus}/*.txt",
                     "--max_steps", "3", "--output_dir", str(out), "--eval_protocols", "none")
    assert result.returncode == 0, result.stderr[-4000:]
    return out, corpus


def test_cli_export_loads_in_gensim_and_plain_transformers(word2vec_out):
    pytest.importorskip("gensim")
    out, _ = word2vec_out
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vectors.txt", "modeling_word2vec.py",
                 "configuration_word2vec.py", "README.md", "ssl/model.safetensors"):
        assert (out / name).is_file(), name
    card = (out / "README.md").read_text()
    assert "text:*.txt" in card and str(word2vec_out[1]) not in card  # the corpus glob without its local folder
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_word2vec.Word2VecModel"
    # the same batch scored by hf_ssl's model, to compare with the exported copy's loss (which cannot import hf_ssl)
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out)
    torch.manual_seed(0)
    with torch.no_grad():
        model.output_embeddings.weight.normal_()
    batch = dict(input_ids=torch.tensor([[1, 2, 3, 0]]), context_mask=torch.tensor([[1, 1, 1, 0]], dtype=torch.bool),
                 target_ids=torch.tensor([4]), negative_ids=torch.tensor([[5, 4]]))
    expected = model(**batch).loss.item()
    result = run_python(f"""
        import numpy as np, torch
        from gensim.models import KeyedVectors
        from safetensors.numpy import load_file
        from transformers import AutoModel, AutoTokenizer

        out = {str(out)!r}
        vectors = KeyedVectors.load_word2vec_format(out + "/vectors.txt")
        weights = load_file(out + "/model.safetensors")["input_embeddings.weight"]
        tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
        assert len(vectors) == weights.shape[0] - 1  # every word but [UNK]
        assert np.array_equal(vectors.vectors, weights[:-1])
        assert vectors.index_to_key == tokenizer.convert_ids_to_tokens(list(range(len(vectors))))

        model = AutoModel.from_pretrained(out, trust_remote_code=True)
        assert type(model).__name__ == "Word2VecModel" and "transformers_modules" in type(model).__module__
        ids = tokenizer("the Return value xyzzy", return_tensors="pt").input_ids
        assert tokenizer.convert_ids_to_tokens(ids[0])[-1] == "[UNK]"
        hidden = model(input_ids=ids).last_hidden_state
        assert torch.equal(hidden[0], torch.from_numpy(weights)[ids[0]])
        torch.manual_seed(0)  # the same output vectors as in the test's process
        with torch.no_grad():
            model.output_embeddings.weight.normal_()
        batch = dict(input_ids=torch.tensor([[1, 2, 3, 0]]), context_mask=torch.tensor([[1, 1, 1, 0]], dtype=torch.bool),
                     target_ids=torch.tensor([4]), negative_ids=torch.tensor([[5, 4]]))
        print("LOSS", model(**batch).loss.item())
    """)
    assert float(result.stdout.split("LOSS")[-1]) == pytest.approx(expected, rel=1e-6)


def test_cli_evaluate_word_vectors_with_given_files(word2vec_out, tmp_path):
    out, _ = word2vec_out
    vectors = (out / "vectors.txt").read_text().splitlines()
    words = [line.split(" ", 1)[0] for line in vectors[1:9]]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("".join(f"{a},{b},{i}\n" for i, (a, b) in enumerate(zip(words, words[1:]))) + "zzz,yyy,1\n")
    questions = tmp_path / "q.txt"
    questions.write_text(f": s\n{words[0]} {words[1]} {words[2]} {words[3]}\n{words[4]} {words[5]} {words[6]} {words[7]}\n")
    result = run_cli("evaluate", "--model", str(out), "--protocol", "word-similarity,analogy",
                     "--pairs", str(pairs), "--questions", str(questions))
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads((out / "eval_results.json").read_text())
    assert scores["word-similarity"]["params"]["pairs_used"] == 7
    assert scores["word-similarity"]["oov_share"] == pytest.approx(1 / 8)
    assert scores["analogy"]["coverage"] == 1.0
    missing = run_cli("evaluate", "--model", str(out), "--protocol", "word-similarity", "--pairs", str(tmp_path / "no.tsv"))
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "word-similarity file" in missing.stderr and "does not exist" in missing.stderr


def test_cli_min_count_nobody_reaches_is_one_line_and_writes_nothing(word2vec_out, tmp_path):
    _, corpus = word2vec_out
    out = tmp_path / "never"
    result = run_cli("pretrain", "--method", "word2vec", "--preset", "tiny", "--dataset", f"text:{corpus}/*.txt",
                     "--min_count", "100000", "--output_dir", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "min_count=100000" in result.stderr
    assert not (out / "config.json").exists()
