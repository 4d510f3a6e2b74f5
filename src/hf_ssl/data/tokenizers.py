"""Tokenizers that travel with a model: a given one (a folder or Hub id) or one trained on the user's corpus.

A trained tokenizer is saved under the run's work folder and reused when the run resumes: token ids must not
change under a checkpoint, and every process of a multi-process run must use the same vocabulary.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Iterable

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..errors import HfSslError, first_line

TOKENIZER_SUBDIR = "tokenizer"


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """A tokenizer folder, a model folder holding one, or a Hub id. Only fast (tokenizer.json) tokenizers: a
    checkpoint without tokenizer.json loads in plain transformers with an empty vocabulary (all unknown)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HfSslError(f"cannot load a tokenizer from {spec}: {first_line(e)}") from None
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise HfSslError(f"tokenizer {spec} has no fast (tokenizer.json) version; hf-ssl saves fast tokenizers only")
    return tokenizer


def trained_or_cached_tokenizer(
    work_dir: str, train: Callable[[], PreTrainedTokenizerBase],
) -> tuple[PreTrainedTokenizerBase, bool]:
    """The tokenizer a previous run of the same output folder trained, or a new one from `train()`, saved.
    Returns it and whether it was trained now."""
    path = os.path.join(work_dir, TOKENIZER_SUBDIR)
    if os.path.isfile(os.path.join(path, "tokenizer.json")):
        return load_tokenizer(path), False
    tokenizer = train()
    tokenizer.save_pretrained(path)
    return tokenizer, True


def train_clip_bpe(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """CLIP's byte-level BPE (lower-cased, `<|startoftext|>` / `<|endoftext|>`), trained on `texts`; the
    vocabulary stops growing when no pair is left to merge, so a small corpus yields fewer tokens.

    Every byte is in the vocabulary both inside a word and word-final (with CLIP's `</w>` suffix), as in CLIP's
    own vocabulary, so no text ever hits the unknown token. That matters more than usual: CLIP's unknown token is
    `<|endoftext|>`, where the text tower pools, so an unknown piece (in a zero-shot label, say) would silently end
    the text there. BPE training only keeps symbols it sees, hence the coverage words."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    return CLIPTokenizer().train_new_from_iterator(
        itertools.chain(texts, _byte_coverage_words()), vocab_size=vocab_size, initial_alphabet=ByteLevel.alphabet())


def _byte_coverage_words() -> list[str]:
    """Words in which every byte that can end a UTF-8 word appears word-final (and inside a word): printable
    ASCII doubled ("aa": `a`, `a</w>`), and for each continuation byte 0x80-0xBF a two-byte character ending
    with it that survives CLIP's normalisation (NFC, lower case) and is no whitespace. Lead bytes never end a
    valid UTF-8 string."""
    import string
    import unicodedata

    words = [c * 2 for c in string.printable if not c.isspace()]
    for last_byte in range(0x80, 0xC0):
        for code_point in range(0x80, 0x800):
            char = chr(code_point)
            if (char.encode()[-1] == last_byte and not char.isspace() and char.lower() == char
                    and unicodedata.normalize("NFC", char) == char):
                words.append(char * 2)
                break
    return words


# --- language-model tokenizers (mlm, clm) -----------------------------------------------------------------------


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """BERT's uncased WordPiece (``##`` continuation pieces; [PAD] [UNK] [CLS] [SEP] [MASK]), trained on `texts` with
    `tokenizers` through transformers' `train_new_from_iterator`, which keeps BERT's normaliser, pre-tokenizer and
    `[CLS] A [SEP] B [SEP]` post-processor."""
    from transformers import BertTokenizer

    return BertTokenizer().train_new_from_iterator(texts, vocab_size=vocab_size)


def train_byte_level_bpe(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """GPT-2's byte-level BPE (every byte is a token, so nothing is unknown) with its `<|endoftext|>` token, which
    separates documents and doubles as padding, trained on `texts`."""
    from transformers import GPT2Tokenizer

    tokenizer = GPT2Tokenizer().train_new_from_iterator(texts, vocab_size=vocab_size)
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


LANGUAGE_MODEL_TOKENIZER_TRAINERS: dict[str, Callable[[Iterable[str], int], PreTrainedTokenizerBase]] = {
    "wordpiece": train_wordpiece, "bpe": train_byte_level_bpe,
}
