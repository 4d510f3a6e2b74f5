"""A vector quantizer with an L2-normalised codebook, looked up by cosine similarity.

The building block of visual tokenizers (BEiT v2's VQ-KD, Peng et al. 2022, Sec. 2.2; VQ-VAE, van den Oord et al.
2017): each input vector is replaced by the code whose direction is closest to it, gradients pass the
non-differentiable lookup with the straight-through estimator, and the codebook learns either from an
exponential moving average of the vectors assigned to each code or from a codebook loss. Nothing here knows
about images or any method.

Side effects happen once per optimizer step, not per forward pass: in training, `forward` only stages the batch
statistics (per-code counts and sums, a sample of the inputs), and `update()` (which a model's
`on_optimizer_step` calls after each optimizer step) applies them: the EMA step, the k-means initialisation of
the codebook, dead-code restarts and the usage statistics. With gradient accumulation, the micro-batches of a
step are thus pooled, and under `torch.distributed` the statistics are summed over processes first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

UPDATE_RULES = ("ema", "loss")


@dataclass
class QuantizerOutput:
    """
    quantized: (..., D) the codes of the inputs on the forward pass, the L2-normalised inputs on the backward
        pass (straight-through estimator).
    ids: (...) long, the index of each input's code.
    loss: the commitment term (plus the codebook term when the codebook is learnt by the loss).
    """

    quantized: torch.Tensor
    ids: torch.Tensor
    loss: torch.Tensor


def cosine_kmeans(samples: torch.Tensor, num_clusters: int, iterations: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Spherical k-means of L2-normalised (N, D) samples (the codebook initialisation of BEiT v2's reference code):
    start from random samples, then alternate cosine-argmax assignment and normalised means; a cluster left
    empty keeps its previous centre. Returns (num_clusters, D) unit vectors."""
    samples = F.normalize(samples.float(), dim=-1)
    replace = samples.shape[0] < num_clusters
    start = (torch.randint(samples.shape[0], (num_clusters,), device=samples.device, generator=generator) if replace
             else torch.randperm(samples.shape[0], device=samples.device, generator=generator)[:num_clusters])
    centres = samples[start]
    for _ in range(iterations):
        assignment = (samples @ centres.T).argmax(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, samples)
        counts = torch.bincount(assignment, minlength=num_clusters)
        centres = torch.where((counts > 0)[:, None], F.normalize(sums, dim=-1), centres)
    return centres


class VectorQuantizer(nn.Module):
    """Cosine-similarity vector quantizer.

    Args:
        num_codes: K, the codebook size (BEiT: 8192).
        code_dim: D, the width of the codes (BEiT v2: 32; low-dimensional codes raise codebook usage, Sec. 2.2).
        update: "ema" (BEiT v2): the codebook is a buffer moved towards the normalised mean of the inputs assigned
            to each code, `e <- normalize(decay e + (1 - decay) normalize(mean))`, for the codes used in the step;
            "loss" (VQ-VAE): the codebook is a parameter trained by `||sg[z] - e||^2`.
        decay: the EMA decay (BEiT v2 reference: 0.99).
        commitment_weight: beta of the commitment term `beta ||z - sg[e]||^2` (BEiT v2 Eq. 2: 1).
        usage_window: optimizer steps over which a code counts as live (used at least once).
        restart_dead_codes: re-seed codes unused for `usage_window` steps with recent inputs (Dhariwal et al. 2020,
            Jukebox; BEiT v2's reference relies on its k-means initialisation instead).
        kmeans_init_iterations: >0: at the first update, initialise the codebook by spherical k-means on the
            staged inputs (BEiT v2 reference `--quantize_kmeans_init`, 10 iterations); 0: random unit vectors.
        num_staged_samples: how many inputs per step are kept (a random subset) to draw restarts and the k-means
            initialisation from; default 8 x num_codes (the reference runs its k-means on a whole first batch).

    All inputs and codes are compared as unit vectors: `forward` normalises its inputs, and the codebook is used
    normalised, so that the nearest code is the one with the highest cosine similarity.
    """

    def __init__(self, num_codes: int, code_dim: int, update: str = "ema", decay: float = 0.99,
                 commitment_weight: float = 1.0, usage_window: int = 100, restart_dead_codes: bool = True,
                 kmeans_init_iterations: int = 10, num_staged_samples: int | None = None):
        super().__init__()
        if update not in UPDATE_RULES:
            raise ValueError(f"update must be one of {UPDATE_RULES}, got '{update}'")
        self.num_codes, self.code_dim, self.update_rule = num_codes, code_dim, update
        self.decay, self.commitment_weight = decay, commitment_weight
        self.usage_window, self.restart_dead_codes = usage_window, restart_dead_codes
        self.num_staged_samples = num_staged_samples or 8 * num_codes
        codebook = F.normalize(torch.randn(num_codes, code_dim), dim=-1)
        if update == "ema":
            self.register_buffer("codebook", codebook)   # moved by `update()` only, never by a gradient
        else:
            self.codebook = nn.Parameter(codebook)
        # Everything a resumed run needs is a buffer (saved in checkpoints and in save_pretrained).
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_used", torch.full((num_codes,), -1, dtype=torch.long))     # update index, -1: never
        self.register_buffer("last_restarted", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("needs_init", torch.tensor(kmeans_init_iterations > 0))
        self.kmeans_init_iterations = kmeans_init_iterations
        self._clear_staged()

    # --- lookup ----------------------------------------------------------------------------------------------

    def normalized_codebook(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=-1)

    def lookup(self, vectors: torch.Tensor) -> torch.Tensor:
        """The id of the code with the highest cosine similarity to each vector: (..., D) -> (...) long."""
        similarity = F.normalize(vectors.float(), dim=-1) @ self.normalized_codebook().float().T
        return similarity.argmax(dim=-1)

    def forward(self, vectors: torch.Tensor) -> QuantizerOutput:
        """Quantize (..., D) vectors. In training (with gradients), the step's statistics are staged for `update()`."""
        inputs = F.normalize(vectors.float(), dim=-1)
        codebook = self.normalized_codebook().float()
        ids = (inputs @ codebook.T).argmax(dim=-1)
        codes = codebook[ids]
        # ||z - sg[e]||^2 per vector (summed over D, as BEiT v2 Eq. 2), averaged over vectors
        loss = self.commitment_weight * (inputs - codes.detach()).pow(2).sum(-1).mean()
        if self.update_rule == "loss":
            loss = loss + (inputs.detach() - codes).pow(2).sum(-1).mean()
        # straight-through: forward value = the code, gradient = identity to the (normalised) input
        quantized = inputs + (codes - inputs).detach()
        if self.training and torch.is_grad_enabled():
            self._stage(inputs.detach(), ids)
        return QuantizerOutput(quantized=quantized.to(vectors.dtype), ids=ids, loss=loss)

    # --- per-step updates ------------------------------------------------------------------------------------

    def _clear_staged(self) -> None:
        self._staged_counts: torch.Tensor | None = None
        self._staged_sums: torch.Tensor | None = None
        self._staged_samples: torch.Tensor | None = None

    @torch.no_grad()
    def _stage(self, inputs: torch.Tensor, ids: torch.Tensor) -> None:
        inputs, ids = inputs.reshape(-1, self.code_dim), ids.reshape(-1)
        counts = torch.bincount(ids, minlength=self.num_codes).float()
        sums = torch.zeros(self.num_codes, self.code_dim, device=inputs.device).index_add_(0, ids, inputs)
        keep = torch.randperm(inputs.shape[0], device=inputs.device)[: self.num_staged_samples]
        if self._staged_counts is None:
            self._staged_counts, self._staged_sums, self._staged_samples = counts, sums, inputs[keep]
        else:
            self._staged_counts += counts
            self._staged_sums += sums
            samples = torch.cat([self._staged_samples, inputs[keep]])
            self._staged_samples = samples[torch.randperm(samples.shape[0], device=samples.device)
                                           [: self.num_staged_samples]]

    @torch.no_grad()
    def update(self) -> dict[str, float]:
        """Apply the statistics staged since the last call (once per optimizer step). Returns the usage statistics
        of the step: `codebook_perplexity` (exp of the entropy of the code frequencies: K when all codes are used
        equally, 1 when one code takes everything), `codebook_live_share` (share of codes used in the last
        `usage_window` steps) and `codebook_restarts` (codes re-seeded now). Empty when nothing was staged."""
        if self._staged_counts is None:
            return {}
        counts, sums, samples = self._staged_counts, self._staged_sums, self._staged_samples
        self._clear_staged()
        counts, sums = _sum_over_processes(counts), _sum_over_processes(sums)
        self.num_updates += 1
        step = int(self.num_updates)
        used = counts > 0
        stats = {"codebook_perplexity": perplexity(counts)}

        if bool(self.needs_init):
            # the staged ids refer to the random initial codebook: only the k-means runs this step
            self.codebook.data.copy_(cosine_kmeans(samples, self.num_codes, self.kmeans_init_iterations))
            self.needs_init.fill_(False)
            self.last_restarted.fill_(step)
            _broadcast_from_first_process(self.codebook.data)
            stats.update(codebook_live_share=0.0, codebook_restarts=0.0)
            return stats

        if self.update_rule == "ema":
            means = F.normalize(sums / counts.clamp_min(1.0)[:, None], dim=-1)
            moved = F.normalize(self.decay * self.codebook + (1 - self.decay) * means, dim=-1)
            self.codebook.copy_(torch.where(used[:, None], moved, self.codebook))
        self.last_used[used] = step
        live = (self.last_used >= 0) & (step - self.last_used < self.usage_window)
        stats["codebook_live_share"] = live.float().mean().item()

        restarts = 0
        if self.restart_dead_codes:
            idle_since = torch.maximum(self.last_used, self.last_restarted)
            dead = torch.nonzero(step - idle_since >= self.usage_window).flatten()
            restarts = int(dead.numel())
            if restarts:
                # re-seed with random recent inputs (unit vectors, with replacement only when there are too few)
                picks = (torch.randperm(samples.shape[0], device=samples.device)[:restarts]
                         if samples.shape[0] >= restarts else
                         torch.randint(samples.shape[0], (restarts,), device=samples.device))
                self.codebook.data[dead] = samples[picks].to(self.codebook.dtype)
                self.last_restarted[dead] = step
                _broadcast_from_first_process(self.codebook.data)
        stats["codebook_restarts"] = float(restarts)
        return stats


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the distribution given by (K,) non-negative counts."""
    total = counts.sum()
    if total <= 0:
        return 0.0
    probabilities = counts[counts > 0] / total
    return math.exp(-(probabilities * probabilities.log()).sum().item())


def _sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
    return tensor


def _broadcast_from_first_process(tensor: torch.Tensor) -> None:
    # Restarts and the k-means draw random samples from each process's own inputs: process 0's choice wins, so
    # that every replica keeps the same codebook. Whether a restart happens is decided from summed statistics,
    # hence the same on every process, so all of them reach this collective together.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast(tensor, src=0)


__all__ = ["QuantizerOutput", "UPDATE_RULES", "VectorQuantizer", "cosine_kmeans", "perplexity"]
