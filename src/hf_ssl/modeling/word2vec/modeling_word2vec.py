"""word2vec (Mikolov et al. 2013a, 2013b) as a `PreTrainedModel`: skip-gram and CBOW with negative sampling.

The lecture notes' encoder/decoder view: the encoder E(w) = onehot(w)^T W looks a word up in the input embedding
matrix W (the word vectors that are exported), the decoder D(e) = e^T W' scores words with the output embedding
matrix W'. Negative sampling replaces the softmax over the vocabulary by one logistic regression against the
observed word and K noise words (2013b, eq. 4):

    loss = -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c)

Skip-gram: v = W[context word], o = the centre (word2vec.c's orientation). CBOW: v = mean (or sum) of W[context
words], o = the centre. The examples (a subsampled token stream, which of its tokens are each centre's context
words, noise words) are drawn by hf-ssl's data pipeline (`hf_ssl.data.word_vocabulary`); `forward` scores them.
Noise words are shared by groups of consecutive tokens (`hf_ssl.losses.negative_sampling`); unlike word2vec.c, a
noise word equal to the observed word is not skipped (with shared noise words that is a per-pair comparison; it
happens with the noise probability of the observed word, under 1% for all but the few most frequent words).

The exported folder carries this file and what it imports from hf_ssl (`hub.remote_code`), so it loads with
`AutoModel.from_pretrained(folder, trust_remote_code=True)` where hf_ssl is not installed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainingArguments
from transformers.utils import ModelOutput

from ...losses.negative_sampling import banded_scores, context_counts, negative_sampling_loss, window_sum
from ...nn.lazy_adam import LazyAdam
from ...nn.sparse_lookup import sparse_row_lookup
from ..method_model import MethodModel
from .configuration_word2vec import Word2VecConfig

WORD2VEC_TEXT_FILE = "vectors.txt"


@dataclass
class Word2VecOutput(ModelOutput):
    r"""
    loss: the negative-sampling loss of the batch's examples, their mean (or sum: `loss_reduction`); None without
        `context_mask`.
    last_hidden_state: (T, D) the input vector of each token (skip-gram: its word vector; CBOW: its context
        average); without `context_mask`, (..., D) the word vectors of `input_ids`.
    """

    loss: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None


class Word2VecModel(MethodModel):
    """W (`input_embeddings`, the word vectors) and W' (`output_embeddings`). Given only `input_ids` it returns
    their word vectors; given `target_ids` and `negative_ids` too, the negative-sampling loss."""

    config_class = Word2VecConfig
    base_model_prefix = "word2vec"
    main_input_name = "input_ids"
    input_modalities = ("text",)

    def __init__(self, config: Word2VecConfig):
        super().__init__(config)
        self.input_embeddings = nn.Embedding(config.vocab_size, config.vector_size)
        self.output_embeddings = nn.Embedding(config.vocab_size, config.vector_size)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        # word2vec.c: input vectors uniform in [-0.5, 0.5] / dim, output vectors zero
        if module is self.input_embeddings:
            module.weight.uniform_(-0.5 / self.config.vector_size, 0.5 / self.config.vector_size)
        elif module is self.output_embeddings:
            module.weight.zero_()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.input_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.input_embeddings = value

    def word_vectors(self) -> torch.Tensor:
        """(vocab_size, vector_size) W, the exported word vectors (the last row is the never-trained unknown word)."""
        return self.input_embeddings.weight

    def forward(self, input_ids: torch.Tensor, context_mask: torch.Tensor | None = None,
                negative_ids: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs) -> Word2VecOutput:
        """Without `context_mask`: the word vectors of `input_ids` (any shape). With it, the loss of a batch of
        hf-ssl's examples: `input_ids` (T,) a token stream, each token a centre word; `context_mask` (T, 2 * window)
        which tokens at offsets -window..-1, 1..window of each centre are its context words; `negative_ids` (G, S)
        the noise words of each group of T / G consecutive tokens.

        Skip-gram: every (context, centre) pair is an example, the context word's vector predicting the centre
        (word2vec.c's orientation). CBOW: the average (`cbow_mean`; else the sum) of the context vectors predicts
        the centre."""
        if context_mask is None:
            return Word2VecOutput(last_hidden_state=self.input_embeddings(input_ids))
        if negative_ids is None:
            raise ValueError("negative_ids (G, S) are needed to compute the negative-sampling loss")
        if self.config.optimizer == "sparse_adam":
            # Sparse gradients hold only the looked-up rows, the optimizer then touches only them; each table's
            # lookups are one node, whose gradient comes coalesced (`sparse_row_lookup`)
            (vectors,) = sparse_row_lookup(self.input_embeddings.weight, input_ids)
            outputs, noise = sparse_row_lookup(self.output_embeddings.weight, input_ids, negative_ids)
        else:
            vectors = F.embedding(input_ids, self.input_embeddings.weight)
            outputs = F.embedding(input_ids, self.output_embeddings.weight)
            noise = F.embedding(negative_ids, self.output_embeddings.weight)
        if self.config.architecture == "cbow":
            counts = context_mask.sum(1, keepdim=True).to(vectors.dtype)
            vectors = window_sum(vectors, context_mask)
            if self.config.cbow_mean:
                vectors = vectors / counts.clamp(min=1.0)
            has_context = counts > 0  # (T, 1): a centre without context words is no example
            positive = (vectors * outputs).sum(1, keepdim=True)
            loss = negative_sampling_loss(positive, has_context, vectors, has_context[:, 0].to(vectors.dtype), noise,
                                          self.config.negative, self.config.loss_reduction)
        else:
            loss = negative_sampling_loss(banded_scores(outputs, vectors, self.config.window), context_mask, vectors,
                                          context_counts(context_mask), noise, self.config.negative,
                                          self.config.loss_reduction)
        return Word2VecOutput(loss=loss, last_hidden_state=vectors)

    def optimizer_override(self, args: TrainingArguments) -> tuple[type[torch.optim.Optimizer], dict] | None:
        """`optimizer="sparse_adam"`: lazy Adam (`hf_ssl.nn.lazy_adam.LazyAdam`, the update of
        `torch.optim.SparseAdam` in plain row-index operations) with `--learning_rate`, `--adam_beta1/2` and
        `--adam_epsilon`: it updates, and keeps moments of, only the rows a batch touched, as sparse embedding
        gradients need (dense Adam rejects them). "trainer": Trainer's `--optim`."""
        if self.config.optimizer != "sparse_adam":
            return None
        return LazyAdam, dict(lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)

    # ---- hf-ssl's training loop and export
    def exported_model(self) -> Word2VecModel:
        """The model itself is what is exported: word2vec has no native transformers class."""
        return self

    def export_extra_files(self, folder: str | os.PathLike, tokenizer) -> None:
        """hf-ssl's export hook: `vectors.txt` next to the model, for gensim and every other word2vec reader."""
        self.save_word2vec_format(os.path.join(folder, WORD2VEC_TEXT_FILE), tokenizer)

    def save_word2vec_format(self, path: str | os.PathLike, tokenizer) -> None:
        """The word vectors in the word2vec text format (`gensim.models.KeyedVectors.load_word2vec_format(path)`):
        a `count dim` header, then `word v1 ... vdim` per word in id order (most frequent first), without the
        unknown word. Values have 9 significant digits, so float32 vectors round-trip exactly."""
        vectors = self.word_vectors().detach().float().cpu().numpy()
        words = tokenizer.convert_ids_to_tokens(list(range(len(vectors))))
        keep = [i for i, word in enumerate(words) if word is not None and word != tokenizer.unk_token]
        body = io.StringIO()
        np.savetxt(body, vectors[keep], fmt="%.9g", delimiter=" ")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"{len(keep)} {vectors.shape[1]}\n")
            f.writelines(f"{words[i]} {line}\n" for i, line in zip(keep, body.getvalue().splitlines()))


__all__ = ["Word2VecModel", "Word2VecOutput"]
