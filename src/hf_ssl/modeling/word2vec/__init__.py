"""word2vec (Mikolov et al. 2013a, 2013b): skip-gram and CBOW word vectors with negative sampling, exported as a
transformers folder (loadable with `trust_remote_code=True`) plus the word2vec text format gensim reads."""

from ...data.word_vocabulary import concatenate_examples
from ...references.gensim_word2vec import gensim_reference
from ...registry import Method, Preset
from .configuration_word2vec import Word2VecConfig
from .modeling_word2vec import Word2VecModel, Word2VecOutput


def make_collator(config: Word2VecConfig):
    """Each training example is already a chunk's worth of (context bag, centre, noise words) rows, drawn by the
    dataset; a batch joins the chunks."""
    return concatenate_examples


# word2vec.c / gensim train with plain SGD, one pair at a time, learning rate 0.025 decayed linearly to 1e-4. One
# optimizer step here scores thousands of pairs at once; summed into one SGD step at 0.025 the updates of frequent
# words add up and training diverged (measured on Austen, and again with sparse updates on batches of 8,000 words;
# batches of 1,000 words were stable but a Trainer step per 1,000 words costs more than the words), so the presets
# average the loss over the batch's pairs and use Adam (per-parameter step sizes absorb the frequency differences),
# with the same linear decay to 0 and no gradient clipping or weight decay. The model trains with a lazy Adam
# (`optimizer="sparse_adam"`, Word2VecConfig; `hf_ssl.nn.lazy_adam`: only the batch's rows and their moments are
# updated, SparseAdam's update), which replaces `optim` below; `--optimizer trainer` gives dense gradients and
# `--optim`. Dense AdamW on Austen + Lee
# (750k tokens, batches of 8,000 words), analogy accuracy after one epoch: lr 0.02 0.5%, 0.05 2.6% (gensim 2.3%);
# after three: lr 0.05 6.7% (rho 0.22), 0.1 6.5% (rho 0.26). SparseAdam with shared noise words, Austen + Lee +
# Wikipedia, 5 epochs: lr 0.05 rho 0.41 / 6.2%, 0.1 0.19 / 2.8%, 0.2 0.14 / 1.5% (noise pool of 64, not groups).
_OPTIM = dict(optim="adamw_torch", weight_decay=0.0, max_grad_norm=0.0, lr_scheduler_type="linear", warmup_steps=0.0,
              adam_beta1=0.9, adam_beta2=0.999)

PRESETS = {
    "tiny": Preset(
        "16-dimensional vectors, window 2, 2 noise words, min_count 1: a step in milliseconds, for tests",
        config=dict(vector_size=16, window=2, negative=2, min_count=1),
        training=dict(_OPTIM, learning_rate=0.02, per_device_train_batch_size=2, num_train_epochs=1),
    ),
    "small": Preset(
        "the reference defaults (word2vec.c / gensim): skip-gram, 100 dimensions, window 5, 5 noise words, "
        "sample 1e-3, min_count 5, 5 epochs; batches of 8 chunks of 1,000 words",
        config=dict(),
        training=dict(_OPTIM, learning_rate=0.05, per_device_train_batch_size=8, num_train_epochs=5),
    ),
    "base": Preset(
        "the published Google News vectors' size: 300 dimensions, window 5, 5 noise words, sample 1e-5 (2013b), "
        "min_count 5, 5 epochs",
        config=dict(vector_size=300, sample=1e-5),
        training=dict(_OPTIM, learning_rate=0.05, per_device_train_batch_size=8, num_train_epochs=5),
    ),
}

METHOD = Method(
    name="word2vec",
    summary="word2vec: skip-gram / CBOW word vectors with negative sampling and subsampling of frequent words",
    paper="Mikolov et al., Efficient Estimation of Word Representations in Vector Space, 2013 (arXiv:1301.3781); "
          "Mikolov et al., Distributed Representations of Words and Phrases and their Compositionality, NIPS 2013 "
          "(arXiv:1310.4546)",
    config_class=Word2VecConfig,
    model_class=Word2VecModel,
    modality="words",
    presets=PRESETS,
    default_preset="small",
    make_collator=make_collator,
    display_name="word2vec",
    auto_classes=("AutoModel",),
    tags=("word2vec", "word-embeddings", "skip-gram", "cbow"),
    reference_training=gensim_reference,  # gensim's Word2Vec (word2vec.c's algorithm), same corpus and hyperparameters
    limitations=(
        "One vector per word type: no context, no sense distinctions; words below min_count and anything outside "
        "the training corpus map to [UNK], whose vector is untrained. Quality grows with the corpus: a few million "
        "words give rough neighbours, billions give the published analogy scores."
    ),
)

__all__ = ["Word2VecConfig", "Word2VecModel", "Word2VecOutput", "METHOD"]
