"""Patch masking schemes shared by masked-image-modelling methods."""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn


def random_masking(
    batch_size: int, num_patches: int, mask_ratio: float, device: torch.device | str | None = None,
    generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample uniform random masking without replacement (MAE, He et al. 2022, Sec. 3).

    Exactly ``num_patches - int(num_patches * (1 - mask_ratio))`` patches are masked in every
    sample, so the visible set has a fixed length and the encoder runs on a dense tensor.

    ``noise`` (B, N), if given, decides the masks (the patches with the smallest noise stay visible);
    transformers' `ViTMAEForPreTraining` takes the same argument, so both draw identical masks.

    Returns:
        ids_keep: (B, K) indices of the visible patches, in shuffled order.
        mask: (B, N) float, 1 for masked patches, 0 for visible ones, in the original patch order.
        ids_restore: (B, N) permutation that undoes the shuffle (gather with it to unshuffle).
    """
    num_keep = int(num_patches * (1 - mask_ratio))
    if noise is None:
        # no `generator=None`: under torch.compile, a batch of another size (an epoch's last) makes the size
        # symbolic, and torch.rand with a generator argument, even None, then fails (PyTorch 2.13)
        drawn_by = {} if generator is None else {"generator": generator}
        noise = torch.rand(batch_size, num_patches, device=device, **drawn_by)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :num_keep]
    mask = torch.ones(batch_size, num_patches, device=device)
    mask[:, :num_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_keep, mask, ids_restore


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``tokens[b, ids[b, i], :]`` for a (B, N, D) tensor and (B, K) indices."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def blockwise_masking(
    batch_size: int, grid_size: int | tuple[int, int], num_masking_patches: int, min_block_patches: int = 16,
    max_block_patches: int | None = None, min_aspect: float = 0.3, max_aspect: float | None = None,
    max_attempts: int = 10, device: torch.device | str | None = None, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blockwise masking of BEiT (Bao et al. 2022, Sec. 2.3, Algorithm 1), drawn for a whole batch at once.

    Rectangular blocks of patches are added to each sample's mask until it holds ``num_masking_patches``
    patches (BEiT: 40% of them, 75 of 196 in the reference code). Each block has an area ``s ~ U(min_block,
    remaining budget)`` patches (paper: at least 16), an aspect ratio ``r`` drawn log-uniformly in
    ``[min_aspect, max_aspect]`` (paper: [0.3, 1/0.3]), sides ``round(sqrt(s r)) x round(sqrt(s / r))`` and a
    uniformly random position. As in the reference `MaskingGenerator`, a block is kept only if it adds between 1
    and the remaining budget of new patches (so a mask never exceeds the target), each round tries up to
    ``max_attempts`` blocks, and a sample where no block fits any more stops a little below the target.

    The rounds run for all samples together: one candidate block per sample per attempt, written as
    comparisons against the row and column indices of the grid (no Python loop over samples).

    Returns a (B, H * W) bool tensor, True for masked patches, in row-major patch order (ViT's and
    transformers' `bool_masked_pos`).
    """
    height, width = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    max_block_patches = num_masking_patches if max_block_patches is None else max_block_patches
    max_aspect = 1 / min_aspect if max_aspect is None else max_aspect
    log_min_aspect, log_max_aspect = math.log(min_aspect), math.log(max_aspect)
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)

    mask = torch.zeros(batch_size, height, width, dtype=torch.bool, device=device)
    count = torch.zeros(batch_size, dtype=torch.long, device=device)
    active = count < num_masking_patches   # samples below the target that may still grow
    while bool(active.any()):
        budget = (num_masking_patches - count).clamp(max=max_block_patches)
        placed = torch.zeros_like(active)
        for _ in range(max_attempts):
            trying = active & ~placed
            if not bool(trying.any()):
                break
            uniform = torch.rand(batch_size, 4, device=device, generator=generator)
            # random.uniform(a, b) of the reference: a + (b - a) u, also when b < a (a budget below min_block)
            area = min_block_patches + (budget - min_block_patches) * uniform[:, 0]
            aspect = torch.exp(log_min_aspect + (log_max_aspect - log_min_aspect) * uniform[:, 1])
            block_height = torch.round(torch.sqrt(area * aspect)).long()
            block_width = torch.round(torch.sqrt(area / aspect)).long()
            fits = (block_height < height) & (block_width < width)   # strict, as the reference
            # randint(0, H - h) inclusive; where the block does not fit the position is irrelevant (rejected)
            top = (uniform[:, 2] * (height - block_height + 1).clamp_min(1)).long()
            left = (uniform[:, 3] * (width - block_width + 1).clamp_min(1)).long()
            in_rows = (rows >= top[:, None]) & (rows < (top + block_height)[:, None])
            in_cols = (cols >= left[:, None]) & (cols < (left + block_width)[:, None])
            block = in_rows[:, :, None] & in_cols[:, None, :]
            new = (block & ~mask).flatten(1).sum(1)
            accept = trying & fits & (new > 0) & (new <= budget)
            mask |= block & accept[:, None, None]
            count += new * accept
            placed |= accept
        # a sample where no block could be placed in max_attempts stops there (the reference's `delta == 0`)
        active &= placed & (count < num_masking_patches)
    return mask.flatten(1)


def patch_aligned_random_masking(
    batch_size: int, image_size: int, mask_patch_size: int, patch_size: int, mask_ratio: float,
    device: torch.device | str | None = None, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SimMIM's random masking (Xie et al. 2022, Sec. 3): the image is cut into square mask patches of
    ``mask_patch_size`` pixels (a multiple of the backbone's ``patch_size``; paper: 32 px), ``ceil(ratio * count)``
    of them are drawn uniformly without replacement per sample (paper: 0.6), and every backbone patch inside a
    drawn mask patch is masked.

    Returns a (B, (image_size / patch_size)**2) bool tensor, True for masked backbone patches, row-major.
    """
    cells = image_size // mask_patch_size
    scale = mask_patch_size // patch_size
    _, cell_mask, _ = random_masking(batch_size, cells * cells, mask_ratio, device=device, generator=generator)
    cell_mask = cell_mask.bool().view(batch_size, cells, cells)
    return cell_mask.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2).flatten(1)


def supports_mask_token(config) -> bool:
    """True when the transformers model class of ``config`` replaces patches flagged by ``bool_masked_pos`` with a
    mask token (ViT, DeiT, BEiT, Data2VecVision, Swin, Swinv2 do)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        model_class = MODEL_MAPPING[type(config)]
    except KeyError:
        return False
    return "bool_masked_pos" in inspect.signature(model_class.forward).parameters


def mask_token_width(config) -> int:
    """Width of the patch embeddings a mask token replaces: `embed_dim` for hierarchical models (Swin), whose
    `hidden_size` is the width of the last stage; `hidden_size` for ViT-like ones."""
    return int(getattr(config, "embed_dim", None) or config.hidden_size)


def encode_with_mask_token(backbone: nn.Module, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor,
                           mask_token: torch.Tensor) -> torch.Tensor:
    """``backbone(pixel_values, bool_masked_pos)`` with ``mask_token`` (1, 1, :func:`mask_token_width`) in place of
    the flagged patch embeddings (BEiT Sec. 2.3, SimMIM Sec. 3); returns the last hidden state.

    transformers' ViT/DeiT/BEiT/Swin embeddings do this replacement (``x (1 - m) + mask_token m``, before the [CLS]
    token and the position embeddings, where BEiT and SimMIM put it) with their own ``embeddings.mask_token``, a
    parameter that exists only when the model is built with ``use_mask_token=True`` and that is then saved with the
    backbone: the exported checkpoint would carry a weight `AutoModelForImageClassification` reports as unexpected.
    So the method owns the mask token and lends it to the embeddings for this call only, as a plain tensor
    attribute: the gradient reaches the method's parameter, and the backbone's weights stay exactly those of the
    native class.
    """
    embeddings = backbone.embeddings
    if getattr(embeddings, "mask_token", None) is not None:
        raise ValueError("the backbone was built with its own mask token (use_mask_token=True); build it without")
    embeddings.mask_token = mask_token.view_as(mask_token)  # a view is a plain tensor: not registered as a weight
    try:
        return backbone(pixel_values=pixel_values, bool_masked_pos=bool_masked_pos).last_hidden_state
    finally:
        embeddings.mask_token = None
