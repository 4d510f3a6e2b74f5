"""Configuration of the jigsaw puzzle pretext task (context-free network, CFN).

Noroozi, Favaro. "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV 2016
(arXiv:1603.09246). The defaults are the paper's (Sec. 3-4): a 225 px crop divided into a 3x3 grid of 75 px cells,
a 64 px tile taken at a random place in each cell (here: 64 px tiles 11 px apart, each jittered by up to 5 px), every
tile normalised on its own, the tiles shuffled by one permutation of a set chosen by the greedy maximal-Hamming-
distance algorithm (Algorithm 1), one shared encoder per tile, the 9 tiles' fc6 features (512 each) concatenated in
tile order, fc7 (4096) and an fc8 classifier of the permutation's index.
"""

from __future__ import annotations

import functools
import math

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..pretext_task import PretextTaskConfig
from ...nn.pretext import GRID, check_grid_geometry, maximal_hamming_permutations

NUM_TILES = GRID * GRID


@functools.lru_cache(maxsize=8)
def permutation_set(num_permutations: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """The greedy maximal-Hamming-distance set, computed once per (size, seed) in a process."""
    return tuple(tuple(p) for p in maximal_hamming_permutations(num_permutations, NUM_TILES, seed))


@strict
class JigsawConfig(PretextTaskConfig):
    r"""
    backbone_config (`PretrainedConfig`): the shared tile encoder (any transformers vision backbone; the paper's is
        AlexNet up to its last convolution and fc6). Its `image_size` is the side of the puzzle crop (225 when absent)
        and of the images the exported encoder is evaluated on.
    tile_size (`int`, defaults to 64): side of the tiles in pixels (Sec. 3.3); a multiple of the patch size of ViTs.
    tile_gap (`int`, defaults to 11): nominal gap between neighbouring tiles: 75 px cells minus 64 px tiles (Sec.
        3.3), so that edges continuing across tiles do not solve the puzzle.
    max_jitter (`int`, defaults to 5): every tile moves by a random offset in [-5, 5] px per axis, the paper's random
        position of a 64 px tile inside its 75 px cell; at most tile_gap / 2 (tiles never overlap).
    num_permutations (`int`, defaults to 100): size of the permutation set, i.e. the number of classes (Table 3
        compares 100 to 1,000; 1,000 is the paper's main setting, selectable here).
    permutation_seed (`int`, defaults to 0): seed of the random first permutation of Algorithm 1; the rest of the
        set follows deterministically.
    permutations (`list[list[int]]`): the permutation set itself, computed from the two fields above when not given
        and saved in config.json, so a trained model keeps its classes. Permutation k puts tile `permutations[k][i]`
        (row-major in the image) at position i of the puzzle.
    grayscale_probability (`float`, defaults to 0.3): share of puzzles made from a grayscale image, a guard against
        chromatic-aberration shortcuts (Sec. 3.3 trains on colour and grayscale images; 30% in the reference code).
    tile_embedding_dim (`int`, defaults to 512): width of the per-tile layer (fc6) shared by the 9 tiles.
    classifier_hidden_dim (`int`, defaults to 4096): width of fc7 on the 9 concatenated tile embeddings; 0 = a linear
        classifier of the permutation index.
    initializer_range (`float`, defaults to 0.01): std of the normal init of the heads' linear layers.
    """

    model_type = "hf_ssl_jigsaw"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}
    default_image_size = 225
    derived_fields = ("permutations",)  # not a flag or a card hyperparameter: it follows from the two fields above

    tile_size: int = 64
    tile_gap: int = 11
    max_jitter: int = 5
    num_permutations: int = 100
    permutation_seed: int = 0
    permutations: list[list[int]] | None = None
    grayscale_probability: float = 0.3
    tile_embedding_dim: int = 512
    classifier_hidden_dim: int = 4096

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.permutations is None and 1 <= self.num_permutations <= math.factorial(NUM_TILES):
            self.permutations = [list(p) for p in permutation_set(self.num_permutations, self.permutation_seed)]

    def validate_jigsaw(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        check_grid_geometry(self.image_size, self.tile_size, self.tile_gap, self.max_jitter)
        if self.tile_size % self.patch_size:
            raise ValueError(f"tile_size {self.tile_size} must be a multiple of the backbone's patch_size "
                             f"{self.patch_size}")
        if not 2 <= self.num_permutations <= math.factorial(NUM_TILES):
            raise ValueError(f"num_permutations must be in [2, 9!], got {self.num_permutations}")
        if self.permutations is not None:
            if len(self.permutations) != self.num_permutations:
                raise ValueError(f"permutations holds {len(self.permutations)} permutations, num_permutations says "
                                 f"{self.num_permutations}")
            if any(sorted(p) != list(range(NUM_TILES)) for p in self.permutations):
                raise ValueError(f"every entry of permutations must be a permutation of 0..{NUM_TILES - 1}")
            if len({tuple(p) for p in self.permutations}) != len(self.permutations):
                raise ValueError("permutations has duplicates: two classes would be the same puzzle")
        if not 0.0 <= self.grayscale_probability <= 1.0:
            raise ValueError(f"grayscale_probability must be in [0, 1], got {self.grayscale_probability}")
        if self.tile_embedding_dim < 1 or self.classifier_hidden_dim < 0:
            raise ValueError(f"need tile_embedding_dim >= 1 and classifier_hidden_dim >= 0, got "
                             f"{self.tile_embedding_dim} and {self.classifier_hidden_dim}")


__all__ = ["JigsawConfig"]
