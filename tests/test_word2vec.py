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
                                         cached_vocabulary, concatenate_examples, context_mask, draw_negatives,
                                         encode_corpus, reduced_windows, subsample)
from hf_ssl.errors import HfSslError
from hf_ssl.evaluation.word_vectors import (analogy_accuracy, evaluate_word_vectors, read_analogies, read_word_pairs,
                                            word_similarity)
from hf_ssl.losses.negative_sampling import (banded_scores, context_counts, context_offsets, negative_sampling_loss,
                                            window_sum)
from hf_ssl.modeling.word2vec import Word2VecConfig, Word2VecModel
from hf_ssl.nn.lazy_adam import LazyAdam
from hf_ssl.nn.sparse_lookup import sparse_row_lookup

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


def test_context_mask_and_skipgram_pairs_on_a_known_sentence():
    ids = torch.tensor([10, 11, 12, 13, 14, 20, 21])
    docs = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    windows = torch.tensor([1, 2, 1, 2, 2, 1, 2])
    mask = context_mask(docs, windows, max_window=2)
    # a plain loop over centres: contexts within the centre's own window and document, offsets -2, -1, 1, 2
    expected = [[0 <= i + o < len(ids) and docs[i + o] == docs[i] and abs(o) <= windows[i] for o in (-2, -1, 1, 2)]
                for i in range(len(ids))]
    assert mask.tolist() == expected
    assert mask[0].tolist() == [False, False, True, False]  # centre 10, window 1
    assert mask[4].tolist() == [True, True, False, False]  # centre 14: its window of 2 stops at the document's end
    # the skip-gram pairs: (context, centre) for every True
    pairs = {(int(ids[i + o]), int(ids[i])) for i in range(len(ids)) for j, o in enumerate((-2, -1, 1, 2)) if mask[i, j]}
    assert (20, 14) not in pairs and (14, 20) not in pairs  # never across documents
    assert (11, 10) in pairs and (12, 10) not in pairs


def test_training_examples_resample_each_epoch_and_concatenate():
    vocabulary = WordVocabulary.from_texts(SENTENCES * 20, min_count=1)
    ids, docs = encode_corpus(vocabulary, SENTENCES * 20)
    data = Word2VecTrainingData(ids, docs, vocabulary, window=3, sample=1e-2, ns_exponent=0.75, noise_group=16,
                                noise_words=4, chunk_words=100)
    assert len(data) == math.ceil(len(ids) / 100)
    torch.manual_seed(0)
    first, second = data[0], data[0]
    tokens = first["input_ids"].numel()
    assert first["context_mask"].shape == (tokens, 6) and first["negative_ids"].shape == (tokens // 16, 4)
    assert tokens % 16 == 0 and tokens <= 100 + 15
    padding = first["input_ids"] == len(vocabulary)  # the unknown word pads to whole noise groups, in no example
    assert not first["context_mask"][padding].any() and padding[-1] | (tokens == 100)
    assert first["input_ids"].shape != second["input_ids"].shape or not torch.equal(first["input_ids"], second["input_ids"])
    batch = concatenate_examples([first, second])
    assert batch["input_ids"].numel() == tokens + second["input_ids"].numel()
    assert set(batch) == {"input_ids", "context_mask", "negative_ids"}


def test_a_batch_of_chunks_is_drawn_at_once_and_no_window_crosses_a_chunk():
    """`__getitems__` (what SeededCollator fetches with): chunks 1 then 0 of one long document, without subsampling,
    as one stream of 200 tokens padded once; every token keeps its in-chunk context and none reaches the other chunk
    (adjacent in the stream, and in the corpus the same document)."""
    vocabulary = WordVocabulary.from_texts(SENTENCES, min_count=1)
    text = " ".join(SENTENCES * 10)
    ids, docs = encode_corpus(vocabulary, [text])
    assert len(ids) >= 200 and (docs == 0).all()
    data = Word2VecTrainingData(ids, docs, vocabulary, window=3, sample=0.0, ns_exponent=0.75, noise_group=16,
                                noise_words=4, chunk_words=100)
    (batch,) = data.__getitems__([1, 0])
    tokens = batch["input_ids"]
    assert tokens.numel() == 208 and (tokens[200:] == len(vocabulary)).all()  # one padding, at the end
    assert torch.equal(tokens[:100], torch.from_numpy(ids[100:200])) and torch.equal(tokens[100:200],
                                                                                      torch.from_numpy(ids[:100]))
    assert batch["negative_ids"].shape == (13, 4)
    mask = batch["context_mask"]
    offsets = torch.tensor(context_offsets(3))
    reach = torch.arange(208)[:, None] + offsets[None]  # the stream position each mask entry points at
    chunk_of = lambda position: torch.div(position, 100, rounding_mode="floor")  # noqa: E731
    assert not (mask & (chunk_of(reach) != chunk_of(torch.arange(208))[:, None])).any()
    assert mask[:200].any(1).all()  # every real token has a context word (windows of at least 1)


# ------------------------------------------------------------------------------------------------------- loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def loop_loss(inputs, outputs, mask, noise, negative, cbow=False, cbow_mean=True):
    """The paper's loss in float64 Python loops over the pairs of a token stream: skip-gram, every (context c + o,
    centre c) with mask[c, o]; CBOW, each centre with a context against the (mean) context vector. A pair's noise
    words are the S of its input token's group (CBOW: the centre's), each weighing negative / S. Returns the sum and
    the number of pairs."""
    tokens, columns = mask.shape
    offsets = context_offsets(columns // 2)
    groups, size = noise.shape[:2]
    per_group = tokens // groups
    dot = lambda a, b: sum(x * y for x, y in zip(a.tolist(), b.tolist()))  # noqa: E731
    examples = []  # (input vector, output vector, input token's index)
    for c in range(tokens):
        contexts = [c + o for j, o in enumerate(offsets) if mask[c, j]]
        if cbow and contexts:
            bag = sum(inputs[t] for t in contexts)
            examples.append((bag / len(contexts) if cbow_mean else bag, outputs[c], c))
        elif not cbow:
            examples.extend((inputs[t], outputs[c], t) for t in contexts)
    total = 0.0
    for v, u, t in examples:
        total -= log_sigmoid(dot(v, u))
        for s in range(size):
            total -= negative / size * log_sigmoid(-dot(v, noise[t // per_group, s]))
    return total, len(examples)


def test_negative_sampling_pieces_against_float64_loops_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    tokens, window, dim = 40, 3, 5
    inputs = torch.randn(tokens, dim, generator=g, dtype=torch.float64)
    outputs = torch.randn(tokens, dim, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 3, dim, generator=g, dtype=torch.float64)
    mask = context_mask(torch.tensor([0] * 25 + [1] * 15), torch.randint(1, window + 1, (tokens,), generator=g), window)
    offsets = context_offsets(window)
    # banded scores over blocks smaller and larger than the stream, and window sums, against plain loops
    for block in (4, 7, 64):
        scores = banded_scores(outputs, inputs, window, block=block)
        expected = [[float(outputs[c] @ inputs[c + o]) if 0 <= c + o < tokens else 0.0 for o in offsets]
                    for c in range(tokens)]
        np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-12, atol=1e-12)
        sums = window_sum(inputs, mask, block=block)
        expected = [sum((inputs[c + o] for j, o in enumerate(offsets) if mask[c, j]), torch.zeros(dim, dtype=torch.float64))
                    for c in range(tokens)]
        np.testing.assert_allclose(sums.numpy(), torch.stack(expected).numpy(), rtol=1e-12, atol=1e-12)
    counts = [sum(1 for c in range(tokens) for j, o in enumerate(offsets) if mask[c, j] and c + o == t) for t in range(tokens)]
    assert context_counts(mask).tolist() == counts

    expected, pairs = loop_loss(inputs, outputs, mask, noise, negative=5)
    args = (banded_scores(outputs, inputs, window), mask, inputs, context_counts(mask).double(), noise, 5)
    assert negative_sampling_loss(*args, reduction="sum").item() == pytest.approx(expected, rel=1e-12)
    assert negative_sampling_loss(*args).item() == pytest.approx(expected / pairs, rel=1e-12)

    def loss(i, o, n):
        return negative_sampling_loss(banded_scores(o, i, window), mask, i, context_counts(mask).double(), n, 5)

    small = (inputs.clone().requires_grad_(), outputs.clone().requires_grad_(), noise.clone().requires_grad_())
    assert torch.autograd.gradcheck(loss, small)


@pytest.mark.parametrize("architecture", ["skip-gram", "cbow"])
def test_model_loss_is_the_formula_over_its_examples(architecture):
    torch.manual_seed(0)
    config = Word2VecConfig(vocab_size=12, vector_size=6, window=2, architecture=architecture)
    model = Word2VecModel(config).double()
    with torch.no_grad():
        model.output_embeddings.weight.normal_()  # word2vec starts W' at zero; make the scores non-trivial
    ids = torch.tensor([1, 2, 3, 4, 5, 6, 7, 11])  # the last: padding (the unknown word), in no example
    mask = context_mask(torch.tensor([0, 0, 0, 0, 0, 1, 1, 1]), torch.tensor([1, 2, 2, 1, 2, 2, 1, 2]), 2)
    mask[-1] = False
    mask[-2, 2:] = False
    negatives = torch.tensor([[2, 3, 8], [10, 1, 4]])  # two groups of 4 tokens, 3 noise words each
    W = model.input_embeddings.weight.detach()
    Wo = model.output_embeddings.weight.detach()
    expected, count = loop_loss(W[ids], Wo[ids], mask, Wo[negatives], config.negative, cbow=architecture == "cbow")
    output = model(input_ids=ids, context_mask=mask, negative_ids=negatives)
    assert output.loss.item() == pytest.approx(expected / count, rel=1e-10)
    output.loss.backward()
    assert model.input_embeddings.weight.grad.is_sparse  # optimizer "sparse_adam": only the batch's rows
    assert set(model.output_embeddings.weight.grad.coalesce().indices()[0].tolist()) == {*ids.tolist(), *negatives.flatten().tolist()}


def test_sparse_adam_step_is_adam_on_the_touched_rows_only():
    """The optimizer `hf-ssl pretrain` builds from `optimizer_override` (SSLTrainer.create_optimizer, LazyAdam), one step:
    the batch's rows move as Adam's first step moves them, -lr * g / (|g| + eps / sqrt(1 - beta2)) (the moments are
    (1 - beta1) g and (1 - beta2) g^2, bias-corrected, eps added to the uncorrected root), with g the dense gradient
    of the same loss; every other row is unchanged."""
    from transformers import TrainingArguments

    from hf_ssl.training.pretrain import SSLTrainer

    torch.manual_seed(0)
    model = Word2VecModel(Word2VecConfig(vocab_size=20, vector_size=4, window=1))
    with torch.no_grad():
        model.output_embeddings.weight.normal_()
    batch = dict(input_ids=torch.tensor([1, 2, 3, 4]), context_mask=torch.tensor([[0, 1], [1, 1], [1, 1], [1, 0]]).bool(),
                 negative_ids=torch.tensor([[5, 6]]))
    dense = Word2VecModel(Word2VecConfig(vocab_size=20, vector_size=4, window=1, optimizer="trainer"))
    dense.load_state_dict(model.state_dict())
    dense(**batch).loss.backward()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    args = TrainingArguments(output_dir="unused", learning_rate=0.01, report_to=[], use_cpu=True)
    trainer = SSLTrainer(model=model, args=args)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, LazyAdam)
    model(**batch).loss.backward()
    optimizer.step()
    for name, parameter in model.named_parameters():
        gradient = dict(dense.named_parameters())[name].grad
        touched = gradient.abs().sum(1) > 0
        assert touched.sum() >= 4
        expected = before[name] - 0.01 * gradient / (gradient.abs() + args.adam_epsilon / math.sqrt(1 - args.adam_beta2))
        torch.testing.assert_close(parameter.detach()[touched], expected[touched], rtol=0, atol=1e-7)
        assert torch.equal(parameter.detach()[~touched], before[name][~touched])


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
    # word2vec's data asks for no DataLoader worker (`PreparedData.loader_workers`), whatever the cores
    assert "DataLoader worker" not in json.loads((out / "ssl" / "training_info.json").read_text())["hardware"]
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_word2vec.Word2VecModel"
    # the same batch scored by hf_ssl's model, to compare with the exported copy's loss (which cannot import hf_ssl)
    from transformers import AutoModel

    model = AutoModel.from_pretrained(out)
    torch.manual_seed(0)
    with torch.no_grad():
        model.output_embeddings.weight.normal_()
    batch = dict(input_ids=torch.tensor([1, 2, 3, 4]), context_mask=torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]).bool(),
                 negative_ids=torch.tensor([[5, 4]]))
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
        batch = dict(input_ids=torch.tensor([1, 2, 3, 4]), context_mask=torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]).bool(),
                     negative_ids=torch.tensor([[5, 4]]))
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


def test_sparse_row_lookup_gives_the_summed_row_gradients_as_one_coalesced_tensor():
    """Two lookups into one table (word2vec's output vectors of the centres and of the noise words): the table's
    gradient is every looked-up row's summed gradient (a loop over the ids, float64), as one sparse tensor marked
    coalesced with each touched row once, so that neither the gradient norm nor the optimizer sorts it again; an
    output the loss does not use touches no row."""
    torch.manual_seed(0)
    weight = torch.randn(12, 3, dtype=torch.float64, requires_grad=True)
    first_ids, second_ids = torch.tensor([[3, 1, 3], [7, 1, 0]]), torch.tensor([7, 7, 11])
    first, second = sparse_row_lookup(weight, first_ids, second_ids)
    assert torch.equal(first, weight.detach()[first_ids]) and torch.equal(second, weight.detach()[second_ids])
    first_weights, second_weights = torch.randn_like(first), torch.randn_like(second)
    ((first * first_weights).sum() + (second * second_weights).sum()).backward()
    expected = torch.zeros(12, 3, dtype=torch.float64)
    for ids, weights in ((first_ids, first_weights), (second_ids, second_weights)):
        for row, values in zip(ids.flatten().tolist(), weights.reshape(-1, 3)):
            expected[row] += values
    assert weight.grad.is_sparse and weight.grad.is_coalesced()
    assert weight.grad._indices()[0].tolist() == [0, 1, 3, 7, 11]
    torch.testing.assert_close(weight.grad.to_dense(), expected, rtol=0, atol=1e-12)

    weight.grad = None
    first, second = sparse_row_lookup(weight, first_ids, second_ids)
    (first * first_weights).sum().backward()
    assert weight.grad._indices()[0].tolist() == [0, 1, 3, 7]  # 11 only in the unused second lookup
