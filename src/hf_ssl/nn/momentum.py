"""Momentum (EMA) encoders and the step schedules of their coefficients and temperatures.

Used by MoCo (key encoder), BYOL (target network), DINO (teacher): a frozen copy of the online network,
moved towards it after every optimizer step. A method applies these from its `on_optimizer_step(step, progress)`,
which `hf_ssl.training.callbacks.OptimizerStepCallback` calls once per optimizer step.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float, copy_buffers: bool = True) -> None:
    """target <- momentum * target + (1 - momentum) * online for every parameter; buffers (BatchNorm running
    statistics, counters) are copied from online, unless `copy_buffers=False` (DINO's teacher keeps the
    statistics it gathers itself: the reference averages `parameters()` only).

    Parameters and buffers are matched by name, so both modules must have the same structure (the target made
    with `copy_frozen(online)`). MoCo uses momentum 0.999, BYOL and DINO start at 0.996 (see `cosine_momentum`).
    """
    target_params, online_params = dict(target.named_parameters()), dict(online.named_parameters())
    target_buffers, online_buffers = dict(target.named_buffers()), dict(online.named_buffers())
    if target_params.keys() != online_params.keys() or target_buffers.keys() != online_buffers.keys():
        raise ValueError("ema_update: target and online modules have different parameters or buffers")
    names = [n for n, p in target_params.items() if p.is_floating_point()]
    if names:
        # one fused lerp over all tensors: t + (1 - m) * (o - t) = m * t + (1 - m) * o
        torch._foreach_lerp_([target_params[n] for n in names], [online_params[n] for n in names], 1.0 - momentum)
    for name, param in target_params.items():
        if not param.is_floating_point():
            param.copy_(online_params[name])
    if copy_buffers:
        for name, buffer in target_buffers.items():
            buffer.copy_(online_buffers[name])


def cosine_momentum(step: float, total_steps: float, base: float = 0.996, final: float = 1.0) -> float:
    """BYOL's EMA coefficient at step k of K (Grill et al. 2020, Sec. 3.3):
    tau = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2, from `base` at k = 0 to 1 at k = K.

    With `final` != 1: final - (final - base) * (cos(pi k / K) + 1) / 2 (DINO's teacher uses 0.996 -> 1 too).
    `step` is clamped to [0, total_steps].
    """
    k = min(max(step, 0.0), total_steps)
    return final - (final - base) * (math.cos(math.pi * k / total_steps) + 1) / 2


def cosine_schedule(
    step: float, total_steps: float, start: float, end: float, warmup_steps: float = 0,
    warmup_start: float | None = None,
) -> float:
    """A value that rises linearly from `warmup_start` to `start` over `warmup_steps`, then follows a half
    cosine from `start` (at step = warmup_steps) to `end` (at step = total_steps), and stays at `end` after.

    The shape of the reference DINO `cosine_scheduler` (learning rate, weight decay) and, with start == end,
    of DINO's teacher temperature: `cosine_schedule(step, total, 0.07, 0.07, warmup_steps=30 epochs,
    warmup_start=0.04)` is 0.04 -> 0.07 linearly over 30 epochs, then constant (Caron et al. 2021).
    `warmup_start` defaults to 0 (the usual learning-rate warm-up); it is ignored without warm-up steps.
    """
    step = max(step, 0.0)
    if step < warmup_steps:
        begin = 0.0 if warmup_start is None else warmup_start
        return begin + (start - begin) * step / warmup_steps
    span = total_steps - warmup_steps
    progress = min(max((step - warmup_steps) / span, 0.0), 1.0) if span > 0 else 1.0
    return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2


def copy_frozen(module: nn.Module) -> nn.Module:
    """A deep copy of `module` with `requires_grad=False` everywhere: the initial momentum encoder (MoCo's key
    encoder, BYOL's target, DINO's teacher starts equal to the student). The copy keeps the train/eval mode
    of `module`: the reference BYOL and MoCo targets run BatchNorm with batch statistics, like the online
    network. No gradient flows into it; only `ema_update` changes it."""
    frozen = copy.deepcopy(module)
    frozen.requires_grad_(False)
    return frozen
