"""The presets and card sentences the rounds methods (`self_training`, `data_distillation`, `noisy_student`) share.

The semi-supervised presets (`presets.semi_supervised_presets`: one step budget for every method of a table), with
one change: the learning rate follows a cosine that restarts at every phase (`cosine_with_restarts`, one cycle per
phase), so that each round trains its model with a whole schedule, as the papers train teacher and student
separately. With the single cosine of the other methods a later student would start at a fraction of the learning
rate, which ruins a re-initialised one (Noisy Student). The cycles are counted for the method's default `rounds`
without `--teacher`; with another `--rounds N`, pass `--lr_scheduler_kwargs '{"num_cycles": P}'` with P = N + 1
(P = N with `--teacher`) to keep the restarts on the boundaries.
"""

from __future__ import annotations

from .presets import SEMI_SUPERVISED_BACKBONES, semi_supervised_presets

ROUNDS_OPTIMIZER = ("AdamW (lr 1e-3, weight decay 0.01) with a cosine that restarts at every round (one cycle per "
                    "phase), not the papers' SGD")
ROUNDS_IN_ONE_RUN = (
    "Teacher and students train inside one run, the budget split into equal phases (round 0: the teacher on the "
    "labels; then one per student round); the optimizer's moments carry over from one round to the next. Phase 0 "
    "loads unlabelled images it does not use. With `--rounds N` other than the default pass --lr_scheduler_kwargs "
    "'{\"num_cycles\": N+1}' (N with --teacher) so the learning-rate restarts stay on the round boundaries. "
    "`top_k` selection is exact once every unlabelled image has been seen in the round (one epoch), a superset "
    f"before, and restarts its count when a run is resumed. {SEMI_SUPERVISED_BACKBONES}."
)


def rounds_presets(phases: int, **config: object) -> dict[str, dict[str, object]]:
    """`semi_supervised_presets(**config)` with a cosine restarted at each of `phases` equal phases."""
    presets = semi_supervised_presets(**config)
    for preset in presets.values():
        preset["description"] += f", split into {phases} equal phases (a cosine cycle each)"
        preset["training"] = dict(preset["training"], lr_scheduler_type="cosine_with_restarts",
                                  lr_scheduler_kwargs={"num_cycles": phases})
    return presets


__all__ = ["ROUNDS_IN_ONE_RUN", "ROUNDS_OPTIMIZER", "rounds_presets"]
