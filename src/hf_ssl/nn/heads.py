"""Heads that joint-embedding methods put on a backbone's pooled (B, D) features: projectors, predictors,
DINO's head and SwAV's prototypes. They belong to the pretraining model and are discarded at export.

`ProjectionHead` covers the MLPs of SimCLR, MoCo v2/v3, BYOL, SimSiam, Barlow Twins and VICReg; its
classmethod presets build each paper's head with the paper's sizes as defaults (pass smaller sizes for
small backbones and tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from torch.nn.utils.parametrizations import weight_norm


def reset_batch_norm(module: nn.modules.batchnorm._BatchNorm) -> None:
    """A freshly initialised BatchNorm of a head or decoder: unit scale, zero shift (when affine), zero running mean,
    unit running variance, no batches counted. For a model's `_init_weights`: it uses `transformers.initialization`,
    so weights `from_pretrained` has loaded are not overwritten."""
    if module.weight is not None:
        init.ones_(module.weight)
        init.zeros_(module.bias)
    if module.running_mean is not None:
        init.zeros_(module.running_mean)
        init.ones_(module.running_var)
        init.zeros_(module.num_batches_tracked)


class ProjectionHead(nn.Sequential):
    """An MLP: (num_layers - 1) x [Linear -> BatchNorm1d (if batch_norm) -> ReLU], then a last Linear,
    optionally followed by a BatchNorm1d without affine parameters (`last_batch_norm`).

    A Linear followed by BatchNorm has no bias: BN subtracts the batch mean, which cancels any bias (the
    SimSiam, MoCo v3 and Barlow Twins code leave it out; in BYOL and VICReg it is there but inert). So only
    `last_bias` is a choice. Input: (B, input_dim); BatchNorm normalises over the local batch.
    """

    def __init__(
        self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int = 2, batch_norm: bool = True,
        last_batch_norm: bool = False, last_bias: bool = True,
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers.append(nn.Linear(d_in, d_out, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(d_out))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Linear(dims[-1], output_dim, bias=last_bias))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(output_dim, affine=False))
        super().__init__(*layers)

    @classmethod
    def simclr(cls, input_dim: int, hidden_dim: int = 2048, output_dim: int = 128) -> ProjectionHead:
        """SimCLR's projector g (Chen et al. 2020, Sec. 2.1): one hidden layer, W2 ReLU(BN(W1 h)),
        128-d output; hidden width = ResNet-50's 2048 features."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=2)

    @classmethod
    def moco_v2(cls, input_dim: int, hidden_dim: int = 2048, output_dim: int = 128) -> ProjectionHead:
        """MoCo v2's head (Chen, Fan, Girshick, He 2020): a 2-layer MLP, hidden 2048 with ReLU, 128-d
        output, without BatchNorm (MoCo v1/v2 use shuffling BN in the encoder, not in the head)."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=2, batch_norm=False)

    @classmethod
    def moco_v3_projector(
        cls, input_dim: int, hidden_dim: int = 4096, output_dim: int = 256, num_layers: int = 3,
    ) -> ProjectionHead:
        """MoCo v3's projector (Chen, Xie, He 2021, and the reference `_build_mlp`): BN on every layer, the
        output BN without affine, no biases; 3 layers for ViT (the reference code uses 2 for ResNet)."""
        return cls(input_dim, hidden_dim, output_dim, num_layers, last_batch_norm=True, last_bias=False)

    @classmethod
    def moco_v3_predictor(cls, input_dim: int = 256, hidden_dim: int = 4096, output_dim: int = 256) -> ProjectionHead:
        """MoCo v3's predictor: 2 layers, BN on the hidden layer only, no biases (reference `_build_mlp`)."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=2, last_bias=False)

    @classmethod
    def byol(cls, input_dim: int, hidden_dim: int = 4096, output_dim: int = 256) -> ProjectionHead:
        """BYOL's projector and predictor (Grill et al. 2020, Sec. 3.3): Linear 4096 -> BN -> ReLU -> Linear 256.
        The predictor is the same MLP on the 256-d projection: `ProjectionHead.byol(256)`."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=2)

    @classmethod
    def simsiam_projector(cls, input_dim: int, hidden_dim: int = 2048, output_dim: int = 2048) -> ProjectionHead:
        """SimSiam's projector (Chen & He 2021, Sec. 4): 3 layers of 2048, BN on every layer including the
        output (without affine in the reference code), no ReLU on the output, no biases."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=3, last_batch_norm=True, last_bias=False)

    @classmethod
    def simsiam_predictor(cls, input_dim: int = 2048, hidden_dim: int = 512, output_dim: int = 2048) -> ProjectionHead:
        """SimSiam's predictor h (Chen & He 2021, Sec. 4): a 512-wide bottleneck, BN + ReLU on the hidden layer,
        the output layer without BN or ReLU."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=2)

    @classmethod
    def barlow_twins(cls, input_dim: int, hidden_dim: int = 8192, output_dim: int = 8192) -> ProjectionHead:
        """Barlow Twins' projector (Zbontar et al. 2021, implementation details): 3 layers of 8192, BN + ReLU on
        the two hidden layers, a bias-free output layer (the loss standardises the output over the batch)."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=3, last_bias=False)

    @classmethod
    def vicreg(cls, input_dim: int, hidden_dim: int = 8192, output_dim: int = 8192) -> ProjectionHead:
        """VICReg's expander (Bardes, Ponce, LeCun 2022, implementation details): 3 layers of 8192, BN + ReLU on
        the hidden layers, a bias-free output layer (as the reference `Projector`)."""
        return cls(input_dim, hidden_dim, output_dim, num_layers=3, last_bias=False)


class DINOHead(nn.Module):
    """DINO's projection head (Caron et al. 2021, Sec. 3.1 and reference `DINOHead`): an MLP (GELU, no BN) down
    to a `bottleneck_dim` bottleneck, L2 normalisation, then a weight-normalised bias-free linear layer to
    `output_dim` logits.

    With `norm_last_layer` the weight-norm gain g is fixed to 1, so every output row is a unit vector and the
    logits are cosine similarities in [-1, 1], which the reference code notes makes training more stable.
    Without it, g starts at 1 and is trained.

    `batch_norm` puts a BatchNorm1d after each hidden linear layer (the reference `--use_bn_in_head`, off by
    default there). With a conv backbone it matters: the pooled post-ReLU features of different images share one
    dominant direction, so without it the head maps every image to almost the same output and the centred,
    sharpened teacher targets are uniform (measured in hf-ssl's DINO presets: the loss goes to log K).
    """

    def __init__(
        self, input_dim: int, output_dim: int = 65536, hidden_dim: int = 2048, bottleneck_dim: int = 256,
        num_layers: int = 3, norm_last_layer: bool = True, batch_norm: bool = False,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for index, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if index < num_layers - 1:  # hidden layers only: nothing after the bottleneck
                layers += [nn.BatchNorm1d(d_out)] if batch_norm else []
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, output_dim, bias=False))
        self.norm_last_layer = norm_last_layer
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The reference initialisation: truncated normal (std 0.02) MLP weights, zero biases, g = 1. (A method's
        `_init_weights` should leave this module to it: `last_layer.weight` is computed from g and v.)"""
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        gain = self.last_layer.parametrizations.weight.original0
        gain.fill_(1.0)
        gain.requires_grad_(not self.norm_last_layer)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(features), dim=-1))


class Prototypes(nn.Linear):
    """SwAV's K trainable prototype vectors (Caron et al. 2020, Sec. 3.1), as the rows of a bias-free linear
    layer: `prototypes(z)` gives the (B, K) scores z^T c_k of L2-normalised features z (normalise z first).

    Call `normalize_()` once per training step (before the forward, or after the optimizer step) to keep every
    prototype on the unit sphere, as the reference code does, so the scores are cosine similarities.
    3000 prototypes on ImageNet.
    """

    def __init__(self, input_dim: int, num_prototypes: int = 3000):
        super().__init__(input_dim, num_prototypes, bias=False)
        self.normalize_()

    @torch.no_grad()
    def normalize_(self) -> None:
        """L2-normalise each prototype (row of `weight`) in place: the Parameter object is kept, so the
        optimizer's state and DDP's buckets keep pointing at it."""
        self.weight.copy_(F.normalize(self.weight, dim=1))
