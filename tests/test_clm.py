"""Causal language modelling (GPT-2): causal masking, packing with end-of-text between documents, the loss against
a float64 loop, held-out perplexity, the CLI end to end with the export generating text where hf_ssl is blocked."""

import math

import datasets
import pytest
import torch

from hf_ssl.data.language_modeling import CausalLanguageModelingCollator, block_framing, pack_blocks
from hf_ssl.data.tokenizers import train_byte_level_bpe
from hf_ssl.losses.causal_language_modeling import causal_language_modeling_loss

from conftest import run_cli, run_python

VOCAB = 300


def _tiny_clm():
    from hf_ssl.modeling.clm import CLMConfig, CLMForPreTraining
    from hf_ssl.nn.backbone_presets import backbone_config_from_spec

    backbone, _ = backbone_config_from_spec("gpt2-test", vocab_size=VOCAB)
    torch.manual_seed(0)
    return CLMForPreTraining(CLMConfig(backbone_config=backbone, max_length=64)).eval()


def test_a_future_token_never_changes_earlier_logits():
    model = _tiny_clm()
    ids = torch.randint(VOCAB, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        for position in (5, 20, 39):
            changed = ids.clone()
            changed[:, position] = (changed[:, position] + 1) % VOCAB
            logits = model(input_ids=changed).logits
            assert torch.allclose(logits[:, :position], reference[:, :position], atol=1e-5)
            assert not torch.allclose(logits[:, position], reference[:, position], atol=1e-3)


def test_clm_loss_matches_a_float64_loop():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, 9, generator=generator) * 2
    ids = torch.randint(9, (2, 6), generator=generator)
    attention = torch.ones(2, 6, dtype=torch.long)
    attention[1, 4:] = 0  # padding is never a target
    total, count = 0.0, 0
    for b in range(2):
        for t in range(5):
            if not attention[b, t + 1]:
                continue
            h = [float(v) for v in logits[b, t].double()]
            total += -(h[int(ids[b, t + 1])] - math.log(sum(math.exp(v) for v in h)))
            count += 1
    assert causal_language_modeling_loss(logits, ids, attention).item() == pytest.approx(total / count, rel=1e-5)
    model = _tiny_clm()
    batch = CausalLanguageModelingCollator(pad_token_id=0)([{"input_ids": list(range(1, 20))},
                                                            {"input_ids": list(range(5, 15))}])
    with torch.no_grad():
        output = model(**batch)
    assert output.loss.item() == pytest.approx(
        causal_language_modeling_loss(output.logits, batch["input_ids"], batch["attention_mask"]).item())


def test_packing_puts_end_of_text_between_documents():
    documents = [f"Document number {i} says {'hello ' * (i % 7)}and ends." for i in range(50)]
    tokenizer = train_byte_level_bpe(documents, 300)
    prefix, suffix, document_end = block_framing(tokenizer, causal=True)
    assert (prefix, suffix, document_end) == ([], [], [tokenizer.eos_token_id])
    blocks = pack_blocks(datasets.Dataset.from_dict({"text": documents}), tokenizer, 32, prefix_ids=prefix,
                         suffix_ids=suffix, document_end_ids=document_end)
    lengths = [len(b) for b in blocks["input_ids"]]
    assert all(n == 32 for n in lengths[:-1]) and 0 < lengths[-1] <= 32  # full blocks, no padding inside
    stream = [t for b in blocks["input_ids"] for t in b]
    expected = [t for d in documents for t in (*tokenizer(d)["input_ids"], tokenizer.eos_token_id)]
    assert stream == expected  # every token kept, in order, one end-of-text after each document
    assert tokenizer.decode(stream).count("<|endoftext|>") == len(documents)
    # masked-LM framing: [CLS] ... [SEP] blocks, [SEP] between documents
    from hf_ssl.data.tokenizers import train_wordpiece

    wordpiece = train_wordpiece(documents, 200)
    prefix, suffix, document_end = block_framing(wordpiece, causal=False)
    framed = pack_blocks(datasets.Dataset.from_dict({"text": documents}), wordpiece, 32, prefix_ids=prefix,
                         suffix_ids=suffix, document_end_ids=document_end)
    for block, special in zip(framed["input_ids"], framed["special_tokens_mask"]):
        assert block[0] == wordpiece.cls_token_id and block[-1] == wordpiece.sep_token_id and len(block) <= 32
        assert special == [int(t in wordpiece.all_special_ids) for t in block]


def test_perplexity_is_exp_of_the_mean_next_token_loss():
    from hf_ssl.evaluation.language_modeling import evaluate_perplexity

    documents = [f"Paragraph {i} of a small corpus, about {i % 5} things." for i in range(80)]
    tokenizer = train_byte_level_bpe(documents, 300)
    model = _tiny_clm().lm
    corpus = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": documents[:60]}),
                                   "test": datasets.Dataset.from_dict({"text": documents[60:]})})
    results = evaluate_perplexity(model, tokenizer, corpus, "toy", max_length=64)
    stream = [t for d in documents[60:] for t in (*tokenizer(d)["input_ids"], tokenizer.eos_token_id)]
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(stream), 64):  # the same blocks, one at a time
            block = torch.tensor([stream[start : start + 64]])
            log_probs = torch.log_softmax(model(input_ids=block).logits[0, :-1].double(), -1)
            nll -= log_probs.gather(-1, block[0, 1:, None]).sum().item()
            count += block.shape[1] - 1
    assert results["perplexity"]["value"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert results["perplexity"]["params"]["num_tokens"] == count
    # the unigram baseline: add-one smoothed training frequencies
    counts = torch.ones(len(tokenizer), dtype=torch.float64)
    for d in documents[:60]:
        for t in tokenizer(d)["input_ids"]:
            counts[t] += 1
    targets = torch.tensor([t for start in range(0, len(stream), 64) for t in stream[start + 1 : start + 64]])
    unigram = math.exp(-torch.log(counts / counts.sum())[targets].mean().item())
    assert results["perplexity-unigram-baseline"]["value"] == pytest.approx(unigram, rel=1e-6)


def test_cli_exports_a_text_generation_model(tmp_path):
    out = tmp_path / "clm"
    result = run_cli("pretrain", "--method", "clm", "--preset", "tiny", "--max_steps", "4", "--output_dir", str(out))
    assert result.returncode == 0, result.stderr[-5000:]
    assert "perplexity perplexity on python-docs test" in result.stdout and "next-token accuracy" in result.stdout
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and 'pipeline("text-generation"' in card
    run_python(f"""
        from transformers import pipeline
        generator = pipeline("text-generation", model={str(out)!r})
        assert type(generator.model).__name__ == "GPT2LMHeadModel"
        text = generator("Return the value", max_new_tokens=5, do_sample=False)[0]["generated_text"]
        assert text.startswith("Return the value") and len(text) > len("Return the value")
    """)
    evaluated = run_cli("evaluate", "--model", str(out), "--dataset", "python-docs", "--protocol", "perplexity")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert '"perplexity-unigram-baseline"' in evaluated.stdout
