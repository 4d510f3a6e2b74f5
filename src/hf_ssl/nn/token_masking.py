"""BERT's token corruption for masked language modelling, batched (Devlin et al., NAACL 2019, Sec. 3.1 and A.1).

A fraction ``p`` of the (non-special, non-padding) tokens is selected; of the selected, 80% are replaced by
[MASK], 10% by a token drawn uniformly from the vocabulary, 10% are left unchanged; the model is scored on the
selected positions only. Every draw is one tensor operation over the whole batch. Nothing here knows about any
method or tokenizer: the caller says which positions may be selected and, for whole-word masking, where words
start.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # the label of positions that are not scored (PyTorch's and transformers' convention)


def select_tokens(
    candidates: torch.Tensor, probability: float, generator: torch.Generator | None = None,
    word_starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Which positions to predict: each candidate position (bool ``candidates``, shape (B, L)) independently with
    ``probability``, as BERT's ``create_masked_lm_predictions`` targets a ``p`` share of the tokens.

    With ``word_starts`` (bool (B, L), True where a new word begins, e.g. not a WordPiece "##" continuation),
    whole words are selected: one draw per word, shared by all its pieces (whole-word masking, the BERT
    repository's 2019 update). A word is the run of positions from a start up to the next start.
    """
    if word_starts is None:
        draws = torch.rand(candidates.shape, generator=generator, device=candidates.device)
        return candidates & (draws < probability)
    starts = word_starts | ~candidates  # a special token or padding never belongs to the word before it
    word_index = torch.cumsum(starts.long(), dim=1) - 1  # (B, L): which word of its row each position is in
    word_draws = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    return candidates & (torch.gather(word_draws, 1, word_index.clamp(min=0)) < probability)


def corrupt_selected(
    input_ids: torch.Tensor, selected: torch.Tensor, mask_token_id: int, vocab_size: int,
    mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10: of the ``selected`` positions, ``mask_replace_prob`` become ``mask_token_id``,
    ``random_replace_prob`` a token drawn uniformly from ``[0, vocab_size)`` (as in BERT, which draws from the
    whole vocabulary), the rest keep their token. Returns (corrupted input ids, labels): labels hold the
    original token at selected positions and ``IGNORE_INDEX`` elsewhere."""
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    to_mask = selected & (draw < mask_replace_prob)
    to_random = selected & (draw >= mask_replace_prob) & (draw < mask_replace_prob + random_replace_prob)
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator, device=input_ids.device,
                                  dtype=input_ids.dtype)
    corrupted = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    corrupted = torch.where(to_random, random_tokens, corrupted)
    return corrupted, labels


def mask_tokens(
    input_ids: torch.Tensor, candidates: torch.Tensor, mask_token_id: int, vocab_size: int,
    probability: float = 0.15, mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
    word_starts: torch.Tensor | None = None, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`select_tokens` then :func:`corrupt_selected`: (corrupted input ids, labels)."""
    selected = select_tokens(candidates, probability, generator, word_starts)
    return corrupt_selected(input_ids, selected, mask_token_id, vocab_size, mask_replace_prob,
                            random_replace_prob, generator)
