"""hf_ssl.training.callbacks in real (tiny) Trainer runs: the method contract's per-step hook runs once per optimizer
step under gradient accumulation, the position in training is recorded, and the collapse monitor logs `embedding_std` and warns only for collapsed embeddings.
The toy model takes the batches of `MultiViewCollator` with multi-crop, so these runs also check that Trainer
accepts that batch format."""

import logging
import math

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig, Trainer, TrainerCallback, TrainerControl, TrainerState
from transformers import TrainingArguments

from hf_ssl.data.collators import MultiViewCollator, UInt8ImageDataset
from hf_ssl.data.transforms import multi_crop_augmentation
from hf_ssl.modeling.method_model import MethodModel
from hf_ssl.nn.momentum import copy_frozen, cosine_momentum, ema_update
from hf_ssl.training.callbacks import (
    CollapseMonitorCallback, LossTermsCallback, OptimizerStepCallback, embedding_std,
)

DIM = 16


class ToyConfig(PretrainedConfig):
    model_type = "hf_ssl_test_toy"
    constant_embeddings: bool = False


class ToyModel(MethodModel):
    """A linear student with an EMA teacher; stores its (B, D) embeddings like a joint-embedding method."""

    config_class = ToyConfig
    main_input_name = "pixel_values"

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.student = nn.Linear(3 * 8 * 8, DIM)
        self.teacher = copy_frozen(self.student)
        self.forward_calls, self.updates = 0, []
        self.post_init()

    def forward(self, pixel_values, local_pixel_values=None):
        assert pixel_values.shape[1:] == (2, 3, 8, 8) and local_pixel_values.shape[1:] == (2, 3, 4, 4)
        self.forward_calls += 1
        z = self.student(pixel_values[:, 0].flatten(1))
        with torch.no_grad():
            t = self.teacher(pixel_values[:, 1].flatten(1))
        shape = (pixel_values.shape[0], DIM)
        self.last_embeddings = torch.ones(shape) if self.config.constant_embeddings else torch.randn(shape)
        loss = (z - t).pow(2).mean()
        self.last_loss_terms = {"mse": loss.detach(), "calls": torch.tensor(float(self.forward_calls))}
        return {"loss": loss}

    def on_optimizer_step(self, step: int, progress: float) -> None:
        # while the hook runs, the recorded position is still the step just taken's
        self.updates.append((progress, self.forward_calls, int(self.num_optimizer_steps) + 1 == step))
        ema_update(self.teacher, self.student, cosine_momentum(progress, 1.0))


class LogRecorder(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def train(tmp_path, constant_embeddings: bool, callbacks, **kwargs) -> tuple[Trainer, ToyModel]:
    torch.manual_seed(0)
    model = ToyModel(ToyConfig(constant_embeddings=constant_embeddings))
    collator = MultiViewCollator([0.5] * 3, [0.25] * 3, multi_crop_augmentation(8, 4, num_local=2))
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=4,
                             per_device_train_batch_size=8, logging_steps=1, save_strategy="no", disable_tqdm=True,
                             learning_rate=0.1, **kwargs)
    dataset = UInt8ImageDataset(torch.randint(0, 256, (24, 3, 8, 8), dtype=torch.uint8))
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, callbacks=callbacks)
    trainer.train()
    return trainer, model


def test_momentum_once_per_optimizer_step_and_random_embeddings_pass(tmp_path, caplog):
    recorder = LogRecorder()
    with caplog.at_level(logging.WARNING, logger="hf_ssl.training.callbacks"):
        trainer, model = train(tmp_path, False, [OptimizerStepCallback(), CollapseMonitorCallback(), recorder],
                               gradient_accumulation_steps=3)
    # 4 optimizer steps of 3 micro-batches: one update after each third forward, progress k / K
    assert model.forward_calls == 12
    assert model.updates == [(0.25, 3, True), (0.5, 6, True), (0.75, 9, True), (1.0, 12, True)]
    assert int(model.num_optimizer_steps) == 4 and model.progress.item() == 1.0  # recorded once, by MethodModel
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in step_logs] == [1, 2, 3, 4]
    for entry in step_logs:  # isotropic embeddings: about 1/sqrt(D), and a rank near min(B, D) = 8
        assert 0.6 / math.sqrt(DIM) < entry["embedding_std"] < 1.2 / math.sqrt(DIM)
        assert 0.6 * 8 < entry["embedding_rankme"] <= 8
    # the callbacks after the monitor see it in `logs` too; the end-of-training summary is left alone
    assert [("embedding_std" in logs) for logs in recorder.logs] == [True] * 4 + [False]
    assert "train_runtime" in recorder.logs[-1]
    assert not caplog.records


def test_collapse_monitor_warns_on_constant_embeddings(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_ssl.training.callbacks"):
        trainer, model = train(tmp_path, True, [CollapseMonitorCallback(threshold=0.1, warn_every=2)])
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["embedding_std"] for entry in step_logs] == [0.0] * 4
    assert [entry["embedding_rankme"] for entry in step_logs] == pytest.approx([1.0] * 4, abs=1e-4)  # one direction
    assert "embedding_std" not in trainer.state.log_history[-1]  # the end-of-training summary is left alone
    warnings = [r for r in caplog.records if r.name == "hf_ssl.training.callbacks"]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 2  # steps 1 and 3: at most once per 2 steps
    assert "step 1:" in warnings[0].getMessage() and "step 3:" in warnings[1].getMessage()
    assert model.updates == []  # no OptimizerStepCallback installed


def test_callbacks_unwrap_wrappers(tmp_path):
    model = ToyModel(ToyConfig())
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    state, control = TrainerState(global_step=3, max_steps=4), TrainerControl()
    OptimizerStepCallback().on_step_end(args, state, control, model=nn.DataParallel(model))
    assert model.updates == [(0.75, 0, False)] and int(model.num_optimizer_steps) == 3  # a jump from step 0 to 3
    model.last_embeddings = torch.randn(32, DIM)
    logs = {"loss": 1.0}
    CollapseMonitorCallback().on_log(args, state, control, logs=logs, model=nn.DataParallel(model))
    assert logs["embedding_std"] == pytest.approx(embedding_std(model.last_embeddings))


def test_loss_terms_of_the_last_micro_batch_are_logged_next_to_the_loss(tmp_path):
    recorder = LogRecorder()
    trainer, model = train(tmp_path, False, [LossTermsCallback(), recorder], gradient_accumulation_steps=3)
    step_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    # the term of the last micro-batch of each logged step: forward calls 3, 6, 9, 12
    assert [entry["calls"] for entry in step_logs] == [3.0, 6.0, 9.0, 12.0]
    assert all(entry["mse"] >= 0 for entry in step_logs)
    assert [("mse" in logs) for logs in recorder.logs] == [True] * 4 + [False]
    assert "mse" not in trainer.state.log_history[-1]  # the end-of-training summary is left alone
