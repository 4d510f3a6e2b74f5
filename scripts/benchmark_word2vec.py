"""hf-ssl's word2vec next to gensim's `Word2Vec`, on the same corpus, tokens and hyperparameters, in one run.

The corpus: Jane Austen's novels (Debian `r-cran-janeaustenr`, see hf_ssl.data.austen) plus gensim's test-data texts
(the Lee background news corpus and the shortened English Wikipedia dump), written as plain text files and loaded
by both sides through `load_text_corpus("text:...")`; both train on its `train` split, tokenised by hf-ssl's word
rule (lower-cased runs of letters and digits). Hyperparameters: skip-gram, 100 dimensions, window 5, 5 noise words,
min_count 5, sample 1e-3, the same number of epochs. hf-ssl trains through its CLI (Trainer, the `small` preset);
gensim with `workers` threads.

Reported per side: training words/s (in-vocabulary corpus tokens x epochs / training seconds, vocabulary building
excluded), WordSim-353 Spearman rho and Google-analogy accuracy (with coverage), both scored by hf-ssl's evaluation
code on each side's vectors (gensim's own `evaluate_word_pairs` / `evaluate_word_analogies` numbers are printed too).

    PYTHONPATH=src python scripts/benchmark_word2vec.py --epochs 5 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def write_corpus(folder: Path, with_wikipedia: bool) -> dict[str, int]:
    """Austen's paragraphs, Lee's documents and (optionally) the Wikipedia articles as blank-line-separated text."""
    from gensim.test.utils import datapath

    from hf_ssl.data.text import load_text_corpus

    austen = load_text_corpus("austen")
    texts = {"austen": list(austen["train"]["text"]) + list(austen["test"]["text"])}
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        texts["lee"] = [line.strip() for line in f if line.strip()]
    if with_wikipedia:
        from gensim.corpora import WikiCorpus

        wiki = WikiCorpus(datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"),
                          dictionary={}, processes=1)
        texts["wikipedia"] = [" ".join(tokens) for tokens in wiki.get_texts()]
    for name, documents in texts.items():
        (folder / f"{name}.txt").write_text("\n\n".join(" ".join(d.split()) for d in documents), encoding="utf-8")
    return {name: len(documents) for name, documents in texts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="gensim's threads")
    parser.add_argument("--no_wikipedia", action="store_true", help="Austen + Lee only")
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hf_ssl_args", default="", help="extra `hf-ssl pretrain` flags for the hf-ssl side")
    parser.add_argument("--torch_threads", type=int, default=None, help="OMP_NUM_THREADS of the hf-ssl run (default: "
                        "torch's, one per core). On a machine busy with other jobs one thread can be faster than "
                        "several (OpenMP threads wait for each other)")
    args = parser.parse_args()

    from gensim.test.utils import datapath

    from hf_ssl.data.text import load_text_corpus
    from hf_ssl.evaluation.word_vectors import evaluate_word_vectors, load_word_vectors
    from hf_ssl.modeling.word2vec import Word2VecConfig
    from hf_ssl.references.gensim_word2vec import gensim_sentences, train_gensim

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="w2v-bench-"))
    corpus_dir = work / "corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    documents = write_corpus(corpus_dir, not args.no_wikipedia)
    spec = f"text:{corpus_dir}/*.txt"
    train_texts = load_text_corpus(spec)["train"]["text"]
    sentences = gensim_sentences(train_texts)
    tokens = sum(len(s) for s in sentences)
    print(f"corpus: {documents} documents; train split {len(train_texts)} documents, {tokens} tokens")

    rows = []
    # gensim
    # the `small` preset's hyperparameters (Word2VecConfig's defaults: word2vec.c's), as `hf-ssl benchmark --reference`
    model, seconds = train_gensim(Word2VecConfig(), sentences, args.epochs, args.workers, args.seed)
    wv = model.wv
    in_vocab = sum(1 for s in sentences for w in s if w in wv.key_to_index)
    scores = evaluate_word_vectors(wv.vectors, wv.index_to_key, ["word-similarity", "analogy"])
    own_rho = wv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1].statistic
    own_analogy = wv.evaluate_word_analogies(datapath("questions-words.txt"))[0]
    print(f"gensim's own evaluation: WordSim-353 rho {own_rho:.4f}, analogy accuracy {own_analogy:.4f}")
    rows.append(("gensim Word2Vec (workers=%d)" % args.workers, len(wv), in_vocab * args.epochs / seconds, seconds,
                 scores))

    # hf-ssl, through its CLI (Trainer)
    out = work / "hf-ssl-word2vec"
    command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", "word2vec", "--preset", "small",
               "--dataset", spec, "--num_train_epochs", str(args.epochs), "--seed", str(args.seed),
               "--output_dir", str(out), "--eval_protocols", "none", "--save_strategy", "no",
               "--logging_steps", "50", "--disable_tqdm", "true", *args.hf_ssl_args.split()]
    print("$", " ".join(command[1:]))
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1",
                                 **({"OMP_NUM_THREADS": str(args.torch_threads)} if args.torch_threads else {})})
    if result.returncode != 0:
        sys.exit(f"hf-ssl failed:\n{result.stderr[-3000:]}")
    info = json.loads((out / "ssl" / "training_info.json").read_text())
    seconds = info["train_minutes"] * 60
    vectors, words = load_word_vectors(str(out))
    index = set(words)
    in_vocab = sum(1 for s in sentences for w in s if w in index)
    scores = evaluate_word_vectors(vectors, words, ["word-similarity", "analogy"])
    rows.append((f"hf-ssl word2vec (Trainer, {info['global_step']} steps, {args.torch_threads or torch.get_num_threads()} torch thread(s))", len(words),
                 in_vocab * args.epochs / seconds, seconds, scores))

    print(f"\nskip-gram, dim 100, window 5, negative 5, min_count 5, sample 1e-3, {args.epochs} epochs, "
          f"{tokens} training tokens\n")
    print("| implementation | vocabulary | training words/s | training s | WordSim-353 rho (pairs used) | "
          "analogy accuracy (coverage) |")
    print("|---|---|---|---|---|---|")
    for name, vocabulary, speed, seconds, scores in rows:
        similarity, analogy = scores["word-similarity"], scores["analogy"]
        print(f"| {name} | {vocabulary} | {speed:,.0f} | {seconds:.1f} | {similarity['value']:.3f} "
              f"({similarity['params']['pairs_used']}/{similarity['params']['pairs']}) | "
              f"{100 * analogy['value']:.2f}% ({100 * analogy['coverage']:.1f}%) |")
    print(f"\nhf-ssl / gensim training speed: {rows[1][2] / rows[0][2]:.2f}x")


if __name__ == "__main__":
    main()
