"""word2vec (Mikolov et al. 2013a, 2013b) as a `PreTrainedModel`: skip-gram and CBOW with negative sampling.

The lecture notes' encoder/decoder view: the encoder E(w) = onehot(w)^T W looks a word up in the input embedding
matrix W (the word vectors that are exported), the decoder D(e) = e^T W' scores words with the output embedding
matrix W'. Negative sampling replaces the softmax over the vocabulary by one logistic regression against the
observed word and K noise words (2013b, eq. 4):

    loss = -log sigma(u_o . v_c) - sum_k log sigma(-u_k . v_c)

Skip-gram: v_c = W[centre], o = a context word. CBOW: v_c = mean (or sum) of W[context words], o = the centre.
The examples (pairs, bags, noise words) are drawn by hf-ssl's data pipeline (`hf_ssl.data.word_vocabulary`);
`forward` scores a batch of them.

The exported folder carries this file and what it imports from hf_ssl (`hub.remote_code`), so it loads with
`AutoModel.from_pretrained(folder, trust_remote_code=True)` where hf_ssl is not installed.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers.utils import ModelOutput

from ...losses.negative_sampling import negative_sampling_loss
from ..method_model import MethodModel
from .configuration_word2vec import Word2VecConfig

WORD2VEC_TEXT_FILE = "vectors.txt"


@dataclass
class Word2VecOutput(ModelOutput):
    r"""
    loss: the negative-sampling loss summed over the batch's examples (None without `target_ids`).
    last_hidden_state: (N, D) the input representation v_c of each example (the centre's vector, or the CBOW
        context average); without targets, (..., D) the word vectors of `input_ids`.
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

    def forward(self, input_ids: torch.Tensor, target_ids: torch.Tensor | None = None,
                negative_ids: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
                return_dict: bool | None = None, **kwargs) -> Word2VecOutput:
        """Without `target_ids`: the word vectors of `input_ids` (any shape). With them, the loss of a batch of
        hf-ssl's examples: `input_ids` (N, 2 * window) the context words of N centre words (`context_mask` marks
        the real ones; (N,) means one context word each), `target_ids` (N,) the centre words, `negative_ids`
        (N, K) the noise words of each centre.

        Skip-gram: every real (context, centre) pair is an example, the context word's vector predicting the
        centre (word2vec.c's orientation). CBOW: the average (`cbow_mean`; else the sum) of the context vectors
        predicts the centre."""
        vectors = self.input_embeddings(input_ids)
        if target_ids is None:
            return Word2VecOutput(last_hidden_state=vectors)
        if negative_ids is None:
            raise ValueError("negative_ids (N, K) are needed to compute the negative-sampling loss")
        if vectors.dim() == 2:  # one context word per centre
            vectors = vectors.unsqueeze(1)
            context_mask = None
        if context_mask is None:
            context_mask = torch.ones(vectors.shape[:2], dtype=torch.bool, device=vectors.device)
        if self.config.architecture == "cbow":
            weights = context_mask.to(vectors.dtype).unsqueeze(-1)
            vectors = (vectors * weights).sum(1)
            if self.config.cbow_mean:
                vectors = vectors / weights.sum(1).clamp(min=1.0)
            input_mask = None
        else:
            input_mask = context_mask
        loss = negative_sampling_loss(
            vectors, self.output_embeddings(target_ids), self.output_embeddings(negative_ids), input_mask=input_mask,
            # word2vec.c and gensim skip a noise draw that is the observed word itself
            negative_mask=negative_ids != target_ids.unsqueeze(-1), reduction=self.config.loss_reduction)
        return Word2VecOutput(loss=loss, last_hidden_state=vectors)

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
