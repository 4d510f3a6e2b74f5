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
from transformers.trainer_callback import ExportableState

from ..evaluation.rankme import rankme

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
    """Adds `embedding_std` (see `embedding_std`) and `embedding_rankme` (the effective rank of the batch's
    embeddings, `hf_ssl.evaluation.rankme`: 1 when they collapse onto one direction, at most min(B, D)) of
    `model.last_embeddings` to every training log (each `logging_steps`), and warns when `embedding_std` falls below
    `threshold / sqrt(D)`, at most once every `warn_every` steps. The std sees complete collapse (one vector); the
    rank also sees dimensional collapse (embeddings spread over a few directions only, Jing et al. 2022).

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
        signals = {"embedding_std": std, "embedding_rankme": rankme(embeddings)}
        logs.update(signals)
        last = state.log_history[-1] if state.log_history else {}
        if last.get("step") == state.global_step and "loss" in last:
            last.update(signals)
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


class DivergenceError(RuntimeError):
    """Training produced non-finite gradients (under `--on_nonfinite stop`), weights or buffers."""


def all_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A 0-dim bool tensor on the tensors' device, without a host synchronisation: whether no element is NaN or
    infinite, i.e. whether each tensor's smallest and largest elements are finite (`aminmax` propagates NaN and,
    unlike the 2-norm, does not overflow on large finite values: 1e34 squared is inf). A sparse tensor (word2vec's
    embedding gradients) is checked on its stored values. `aminmax` rather than the max-norm `_foreach_norm(inf)`,
    which is as exact: on a CPU the max-norm took 1.6 ms for word2vec's 0.6M gradient values per step, aminmax
    0.08 ms (the 2-norm takes as little but overflows). On a GPU the max-norm stays: one foreach kernel."""
    tensors = [t._values() if t.is_sparse else t for t in tensors]
    tensors = [t for t in tensors if t.numel()]
    if not tensors:
        return torch.tensor(True)
    if tensors[0].is_cuda:  # one kernel for every tensor, where a model's hundreds of launches would cost more
        return torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf")))).all()
    return torch.isfinite(torch.stack([extreme.float() for t in tensors for extreme in torch.aminmax(t)])).all()


class NonFiniteGuardCallback(TrainerCallback, ExportableState):
    """Stops a run whose weights, buffers or gradients stop being finite, or (`mode="skip"`) skips a step whose
    gradients are not, checked after clipping and before `optimizer.step()` (a NaN or infinite loss gives such
    gradients).

    stop: raises `DivergenceError` naming the step, at the end of that step, before Trainer can log it, save it in a
        checkpoint or export it: a diverged run exits non-zero with its last good checkpoint intact, instead of
        exporting NaN weights (Trainer logs a NaN loss as the mean of the earlier ones and finishes normally).
    skip: drops the step's gradients, so that the optimizer leaves every parameter and its moments as they were
        (torch optimizers skip a parameter whose `.grad` is None), as mixed-precision loss scalers skip overflowed
        steps; counted in the log as `nonfinite_steps_skipped`. The learning-rate schedule still advances. Weights or
        buffers that are no longer finite stop the run even so: a forward pass has already written them (BatchNorm's
        running variance overflows before any gradient does: at learning rate 1e8 a SimCLR run saved a checkpoint
        with infinite running_var and finite gradients).

    Gradients are checked at every step, weights and buffers at the steps that log, save or evaluate, at each
    epoch's end and at the last step: nothing non-finite is logged, saved or exported, and a non-finite gradient
    is named at its own step.

    Costs: one host synchronisation per step at its end (and, to skip, one before the optimizer step), which Trainer
    already pays on the loss (`logging_nan_inf_filter`, checked in transformers 5.25). The processes of a DDP run see
    the same all-reduced gradients and the same weights, and so take the same decision.

    The count of skipped steps is part of a checkpoint (`ExportableState`, in trainer_state.json), so a resumed run
    goes on counting; Trainer restores it when `restore_callback_states_from_checkpoint` is set, as pretraining does.
    """

    def __init__(self, mode: str = "stop"):
        if mode not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {mode!r}")
        self.mode = mode
        self.skipped = 0
        self._gradients_finite: torch.Tensor | None = None

    def state(self) -> dict:
        return {"args": {"mode": self.mode}, "attributes": {"skipped": self.skipped}}

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                              model: nn.Module | None = None, **kwargs) -> None:
        finite = all_finite([p.grad for p in model.parameters() if p.grad is not None])
        if self.mode == "stop":
            self._gradients_finite = finite  # read at the step's end, in the same synchronisation as the weights
            return
        if not bool(finite):
            for parameter in model.parameters():
                parameter.grad = None
            self.skipped += 1
            logger.warning("step %d: non-finite gradients, step skipped (%d so far)", state.global_step + 1,
                           self.skipped)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: nn.Module | None = None, **kwargs) -> None:
        # The weights are read only before what would record them: a log, a checkpoint, an evaluation, the end (and
        # each epoch's end, `on_epoch_end`). Reading every weight every step cost word2vec, whose steps touch a few
        # thousand rows, 7 ms of a 45 ms step; a gradient that makes them non-finite is caught at its own step.
        # (DefaultFlowCallback, registered before this callback, has already set `control` for this step.)
        due = control.should_log or control.should_save or control.should_evaluate or control.should_training_stop
        self._check(model, state, weights=due)

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     model: nn.Module | None = None, **kwargs) -> None:
        self._check(model, state, weights=True)  # an epoch's end may log, save or evaluate (per-epoch strategies)

    def _check(self, model: nn.Module, state: TrainerState, weights: bool) -> None:
        tensors = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()] if weights else []
        gradients = self._gradients_finite if self._gradients_finite is not None else torch.tensor(True)
        device = next(model.parameters()).device
        gradients_finite, weights_finite = torch.stack([gradients.to(device), all_finite(tensors).to(device)]).tolist()
        self._gradients_finite = None
        if not gradients_finite:
            raise DivergenceError(f"training diverged: non-finite gradients at step {state.global_step}")
        if not weights_finite:
            raise DivergenceError(f"training diverged: non-finite weights or buffers after step {state.global_step}")

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs) -> None:
        if self.mode == "skip" and logs is not None and "loss" in logs:
            logs["nonfinite_steps_skipped"] = self.skipped
            last = state.log_history[-1] if state.log_history else {}
            if last.get("step") == state.global_step and "loss" in last:
                last["nonfinite_steps_skipped"] = self.skipped
