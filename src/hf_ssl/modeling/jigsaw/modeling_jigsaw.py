"""The jigsaw puzzle pretext task (context-free network) around a stock transformers backbone (ResNet, ViT, ...).

Noroozi, Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV 2016
(arXiv:1603.09246).

The collator cuts every image into the 9 jittered tiles of a 3x3 grid with gaps, normalises each tile on its own and
shuffles them by a permutation drawn from the config's set (`data.pretext_tasks.JigsawCollator`). All 9B tiles go
through the shared (siamese) backbone in one call; a shared layer (fc6) embeds each tile's pooled features, the 9
embeddings are concatenated in puzzle order, and an MLP (fc7, fc8) predicts the permutation's index; the loss is the
cross-entropy over the set (Sec. 3). The backbone is exported; the heads are discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ..method_model import ImagePreview
from ..pretext_task import PretextTaskModel
from ...nn.backbone import build_backbone, feature_dim
from ...nn.heads import ProjectionHead
from ...nn.pretext import GRID, assemble_tiles, crop_tiles, grid_tile_positions, normalize_tiles

from .configuration_jigsaw import JigsawConfig


@dataclass
class JigsawOutput(ModelOutput):
    """
    loss: cross-entropy over the permutation set (None when `return_loss=False` or without `labels`).
    logits: (B, num_permutations) permutation logits of every puzzle.
    pooled_features: (B, 9, D) backbone features of the tiles, in puzzle order.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooled_features: torch.FloatTensor | None = None


class JigsawForPreTraining(PretextTaskModel):
    config_class = JigsawConfig
    base_model_prefix = "jigsaw"

    def __init__(self, config: JigsawConfig):
        super().__init__(config)
        self.backbone = build_backbone(config.backbone_config)
        self.tile_embedding = nn.Sequential(  # fc6, shared by the 9 tiles
            nn.Linear(feature_dim(config.backbone_config), config.tile_embedding_dim), nn.ReLU(inplace=True))
        puzzle_dim, hidden = GRID * GRID * config.tile_embedding_dim, config.classifier_hidden_dim
        self.classifier = ProjectionHead(puzzle_dim, hidden or puzzle_dim, config.num_permutations,  # fc7, fc8
                                         num_layers=2 if hidden else 1, batch_norm=False)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, return_loss: bool = True,
                **kwargs) -> JigsawOutput:
        """pixel_values: (B, 9, C, t, t) the shuffled tiles; labels: (B,) the index of their permutation."""
        if pixel_values.dim() != 5 or pixel_values.shape[1] != GRID * GRID:
            raise ValueError(f"{type(self).__name__} expects puzzles of 9 tiles (B, 9, C, t, t), got "
                             f"{tuple(pixel_values.shape)}")
        features = self.encode(pixel_values.flatten(0, 1)).unflatten(0, (-1, GRID * GRID))  # one call, 9B tiles
        logits = self.classifier(self.tile_embedding(features).flatten(1))  # fc6 per tile, concatenated in order
        loss = F.cross_entropy(logits.float(), labels) if return_loss and labels is not None else None
        return JigsawOutput(loss=loss, logits=logits, pooled_features=features)

    @torch.no_grad()
    def preview(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> ImagePreview:
        """Each image cut into a puzzle shuffled by a random permutation of the set (from the CPU `generator`), and its
        tiles put back by the permutation the model predicts: the bottom row is the image again (tiles at their grid
        places, gaps blank) where the prediction is right."""
        config = self.config
        batch = pixel_values.shape[0]
        positions = grid_tile_positions(batch, config.image_size, config.tile_size, config.tile_gap,
                                        config.max_jitter, generator=generator)
        tiles = crop_tiles(pixel_values, positions, config.tile_size)
        permutations = torch.tensor(config.permutations, device=pixel_values.device)
        drawn = torch.randint(0, len(permutations), (batch,), generator=generator).to(pixel_values.device)
        rows = torch.arange(batch, device=pixel_values.device)[:, None]
        shuffled = tiles[rows, permutations[drawn]]
        predicted = self(normalize_tiles(shuffled), return_loss=False).logits.argmax(dim=-1)
        restored = shuffled[rows, permutations[predicted].argsort(dim=-1)]
        size = pixel_values.shape[-1]
        return ImagePreview(reconstruction=assemble_tiles(restored, size, config.tile_gap),
                            model_input=assemble_tiles(shuffled, size, config.tile_gap),
                            row_labels=("original", "shuffled tiles", "predicted order"))


__all__ = ["JigsawForPreTraining", "JigsawOutput"]
