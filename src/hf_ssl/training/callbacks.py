"""Trainer callbacks that call the method contract (`hf_ssl.modeling.method_model.MethodModel`).

They know no method: every model has the per-step hook (which does nothing for most methods), and the collapse
monitor and the loss-term logger read what `forward` stored, logging nothing where a method stores nothing.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)


def unwrap_model(model: nn.Module | None) -> nn.Module | None:
    """The user's model inside DDP / DataParallel / DeepSpeed / torch.compile wrappers (what
    `accelerator.unwrap_model` does). Trainer hands callbacks `trainer.model`, normally the bare model already;
    this makes the callbacks safe where a wrapped one is passed."""
    return None if model is None else extract_model_from_parallel(model)


class OptimizerStepCallback(TrainerCallback):
    """Calls `model.optimizer_step_done(step, progress)` once per optimizer step, after the step, with
    `step = state.global_step` and `progress = step / state.max_steps` in (0, 1]: 1/K after the first of K steps, 1
    after the last.

    The model runs its `on_optimizer_step` hook (EMA of a teacher with a `cosine_momentum`, temperature schedules,
    `Prototypes.normalize_()`, queue commits) and records the position in its buffers, which checkpoints carry, so
    a resumed run continues from the restored position. `progress` is also the 0-based position of the next step
    in the schedule, the one whose forward pass comes next.
    """

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: nn.Module | None = None, **kwargs) -> None:
        # Checked in transformers 5.23 `Trainer._inner_training_loop`: on_step_end is called only when
        # `do_sync_step` is true, i.e. on the last micro-batch of each gradient-accumulation cycle, right after
        # optimizer.step(), lr_scheduler.step(), zero_grad() and `global_step += 1`; the other micro-batches get
        # on_substep_end. So this runs once per optimizer step, on the updated weights, and before
        # `_maybe_log_save_evaluate` (a checkpoint saved at this step holds the updated teacher).
        if state.max_steps > 0:
            unwrap_model(model).optimizer_step_done(state.global_step, min(state.global_step / state.max_steps, 1.0))


def embedding_std(embeddings: torch.Tensor) -> float:
    """SimSiam's collapse indicator (Chen & He 2021, Sec. 4.1, Fig. 2): the per-dimension standard deviation over
    the batch of the L2-normalised (B, D) embeddings, averaged over dimensions. About 1/sqrt(D) when the
    embeddings spread over the sphere (e.g. isotropic Gaussian), 0 when they collapse to one vector."""
    return F.normalize(embeddings.detach().float(), dim=-1).std(dim=0).mean().item()


class CollapseMonitorCallback(TrainerCallback):
    """Adds `embedding_std` (see `embedding_std`) of `model.last_embeddings` to every training log (each
    `logging_steps`) and warns when it falls below `threshold / sqrt(D)`, at most once every `warn_every` steps.

    `last_embeddings` is a detached (B, D) tensor that the method's forward stores (for SimSiam the projector
    output z; None for methods without embeddings to monitor); it comes from the last micro-batch on this process.

    Where the value shows up: `Trainer.log` appends a copy of the logs to `state.log_history` and then calls
    `on_log` on each callback in order; this callback writes the value into both, so `log_history` (and
    `trainer_state.json`) and the callbacks after it (progress bar / printer) have it. Reporting integrations
    (`report_to`) are registered before user callbacks; to send the value to them too, put the monitor first:
    `trainer.callback_handler.callbacks.insert(0, CollapseMonitorCallback())`.
    """

    def __init__(self, threshold: float = 0.1, warn_every: int = 500):
        self.threshold = threshold
        self.warn_every = warn_every
        self._last_warning_step: int | None = None

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, model: nn.Module | None = None, **kwargs) -> None:
        if logs is None or "loss" not in logs:  # training-step logs only, not evaluation or the final summary
            return
        embeddings = unwrap_model(model).last_embeddings
        if embeddings is None or embeddings.ndim != 2 or embeddings.shape[0] < 2:
            return
        std = embedding_std(embeddings)
        logs["embedding_std"] = std
        last = state.log_history[-1] if state.log_history else {}
        if last.get("step") == state.global_step and "loss" in last:
            last["embedding_std"] = std
        healthy = 1.0 / math.sqrt(embeddings.shape[1])
        due = self._last_warning_step is None or state.global_step - self._last_warning_step >= self.warn_every
        if std < self.threshold * healthy and due and state.is_world_process_zero:
            self._last_warning_step = state.global_step
            logger.warning(
                "step %d: embedding_std %.3g is below %g x 1/sqrt(D) = %.3g (about 1/sqrt(D) = %.3g when healthy): "
                "the embeddings are collapsing to a constant (SimSiam's collapse indicator)",
                state.global_step, std, self.threshold, self.threshold * healthy, healthy,
            )


class LossTermsCallback(TrainerCallback):
    """Adds the parts of a composite loss to every training log: the detached scalars a model's forward stores in
    `last_loss_terms` (VICReg's unweighted invariance, variance and covariance terms) are logged next to `loss`,
    from the last micro-batch on this process. Trainer logs only `loss`, which hides which term dominates (in a
    collapsing VICReg run the variance term rises first). Methods that store none log nothing more."""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, model: nn.Module | None = None, **kwargs) -> None:
        if logs is None or "loss" not in logs:
            return
        terms = unwrap_model(model).last_loss_terms
        if not terms:
            return
        values = {name: float(value) for name, value in terms.items()}
        logs.update(values)
        last = state.log_history[-1] if state.log_history else {}
        if last.get("step") == state.global_step and "loss" in last:
            last.update(values)
