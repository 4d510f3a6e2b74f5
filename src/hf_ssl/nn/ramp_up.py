"""Ramp-ups of an unsupervised loss weight: start near zero while the model's predictions on unlabelled data are still
noise, reach the full weight once they mean something.

- `sigmoid_ramp_up`: exp(-5 (1 - t)^2), t = current / length clipped to [0, 1] (Laine & Aila, "Temporal Ensembling
  for Semi-Supervised Learning", ICLR 2017, Sec. 3.1; Tarvainen & Valpola, "Mean teachers are better role models",
  NeurIPS 2017, App. B.1 and their `sigmoid_rampup`). exp(-5) ~ 0.0067 at t = 0, 1 at t = 1.
- `linear_ramp_up`: 0 until `start`, linear to 1 at `end`, 1 after (Lee, "Pseudo-Label", ICML 2013 Workshop on
  Challenges in Representation Learning, Eq. 16: alpha(t) = 0 for t < T1, (t - T1) / (T2 - T1) alpha_f for
  T1 <= t < T2, alpha_f after; the caller multiplies by alpha_f).

Both are functions of any monotone position: optimizer steps, epochs, or the `progress` fraction (0..1) that every
method model keeps in a buffer. They return a Python float factor in [0, 1].
"""

from __future__ import annotations

import math

__all__ = ["linear_ramp_up", "sigmoid_ramp_up"]


def sigmoid_ramp_up(current: float, length: float) -> float:
    """exp(-5 (1 - t)^2) with t = clip(current / length, 0, 1); 1 when `length` <= 0 (no ramp-up)."""
    if length <= 0:
        return 1.0
    t = min(max(float(current) / float(length), 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def linear_ramp_up(current: float, start: float, end: float) -> float:
    """0 for current < start, (current - start) / (end - start) between, 1 from `end` on (a step at `start` when
    end <= start)."""
    current = float(current)
    if current < start:
        return 0.0
    if current >= end:
        return 1.0
    return (current - start) / (end - start)
