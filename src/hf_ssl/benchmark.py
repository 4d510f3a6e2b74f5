"""`hf-ssl benchmark`: how fast a method trains on this machine, and where the time goes.

Measured in one run, so that ratios hold on a noisy machine (absolute times drift):

- **model step**: forward, backward and AdamW step of the method's model on a real batch of its data pipeline (the
  preset's batch size), timed over `--steps` steps after two warm-up steps; images (or examples) per second;
- **FLOP/s and MFU**: the FLOPs of one forward and backward (`torch.utils.flop_counter`) over the step time, against
  the machine's matmul peak measured here (a 2048 x 2048 matrix product, fp32 or bf16);
- **data**: the time the method's collator takes to produce one such batch (decoding, augmentation, masking), and
  what share of a step it would be if nothing overlapped it;
- **end to end**: `hf-ssl pretrain` itself for `--e2e_steps` steps (Trainer, data loading, logging; no checkpoint,
  no evaluation): its examples per second and the share of time it waited for data (`data_wait_share`);
- **peak memory**: GPU memory allocated (CUDA), else the process's peak resident memory.

`--reference` times the method's independent reference implementation (`Method.reference_model`, e.g. transformers'
ViTMAEForPreTraining for MAE) in the same plain loop, in alternation with the method's model, with the same weights.
A method whose reference trains end to end instead (`Method.reference_training`: word2vec's is gensim's Word2Vec)
is compared on whole training runs: the reference, then `hf-ssl pretrain`, for the preset's epochs on the same
dataset, each side's training time (setup excluded) and the units per second both trained on (word2vec: words/s).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from transformers import TrainingArguments

from .errors import HfSslError
from .modalities import StartingPoint, get_modality
from .modeling.method_model import MethodModel
from .registry import Method
from .training.pretrain import PretrainArguments, bf16_by_default, build_config
from .training.seeded_collation import fetch_examples


@dataclass
class StepTiming:
    name: str
    seconds_per_step: float
    examples_per_second: float
    flops_per_step: float
    achieved_flops: float  # per second
    mfu: float  # achieved / the measured matmul peak


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a square matrix product on this device: the practical peak that MFU is measured against."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    a @ b
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch_size(batch: dict[str, Any]) -> int:
    return next(v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor))


def time_training_steps(models: dict[str, torch.nn.Module], batch: dict[str, Any], steps: int, bf16: bool,
                        peak: float) -> list[StepTiming]:
    """Forward + backward + optimizer step of each model on `batch`, the models in alternation (so that a slow phase
    of a noisy machine hits them alike); the median step time of each. The optimizer is AdamW, or the one a method
    model names in `optimizer_override` (word2vec's LazyAdam), as `hf-ssl pretrain` builds it."""
    device = next(next(iter(models.values())).parameters()).device
    arguments = TrainingArguments(output_dir="unused", learning_rate=1e-6, report_to=[])

    def optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
        override = model.optimizer_override(arguments) if isinstance(model, MethodModel) else None
        optimizer_class, kwargs = override or (torch.optim.AdamW, dict(lr=1e-6))
        return optimizer_class([p for p in model.parameters() if p.requires_grad], **kwargs)

    optimizers = {name: optimizer(m) for name, m in models.items()}

    def step(name: str, autocast: bool = bf16) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = models[name](**batch).loss
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        return loss

    flops = {}
    for name in models:
        models[name].train()
        # The model's FLOPs, counted in fp32: MFU divides the model's work, not that of the kernels a precision
        # picks (in bf16 on a CPU, hf-ssl's short-sequence attention runs the math backend, counted differently
        # from the fused kernel's formula).
        with FlopCounterMode(display=False) as counter:
            step(name, autocast=False)
        flops[name] = counter.get_total_flops()
    times: dict[str, list[float]] = {name: [] for name in models}
    for index in range(steps + 2):  # two warm-up steps
        for name in models:
            _synchronize(device)
            start = time.perf_counter()
            step(name)
            _synchronize(device)
            if index >= 2:
                times[name].append(time.perf_counter() - start)
    examples = _batch_size(batch)
    results = []
    for name in models:
        seconds = statistics.median(times[name])
        results.append(StepTiming(name, seconds, examples / seconds, flops[name], flops[name] / seconds,
                                  flops[name] / seconds / peak))
    return results


def end_to_end(method: Method, preset: str, dataset: str | None, steps: int, bf16: bool) -> dict[str, Any]:
    """`hf-ssl pretrain` on `dataset` (None: the method's default) for `steps` optimizer steps in a subprocess:
    examples per second over Trainer's training time, and the share of it spent waiting for data (the last logged
    `data_wait_share`). One checkpoint, at the end, holds the log; nothing is evaluated."""
    with tempfile.TemporaryDirectory(prefix="hf-ssl-benchmark-") as out:
        logging = max(1, steps // 2)
        command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", method.name, "--preset", preset,
                   *(["--dataset", dataset] if dataset else []), "--max_steps", str(steps),
                   "--logging_steps", str(logging), "--save_steps", str(steps),
                   "--eval_protocols", "none", "--eval_baselines", "false", "--output_dir", out,
                   "--bf16", "true" if bf16 else "false"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise HfSslError(f"the end-to-end run failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
        info = json.loads((Path(out) / "ssl" / "training_info.json").read_text())
        state = json.loads((Path(out) / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    seconds = info["train_minutes"] * 60
    shares = [entry["data_wait_share"] for entry in state["log_history"] if "data_wait_share" in entry]
    return {"dataset": info["dataset"], "examples_per_second": steps * info["effective_batch_size"] / seconds,
            "data_wait_share": shares[-1] if shares else None, "seconds": seconds}


def pretrain_seconds(method: Method, preset: str, dataset: str | None, epochs: float | None = None,
                     max_steps: int | None = None) -> float:
    """`hf-ssl pretrain` for `epochs` epochs or `max_steps` steps (None: the preset's schedule) in a subprocess, without
    checkpoints or evaluation: Trainer's training time in seconds (data preparation and export excluded)."""
    schedule = ((["--num_train_epochs", str(epochs)] if epochs is not None else [])
                + (["--max_steps", str(max_steps)] if max_steps is not None else []))
    with tempfile.TemporaryDirectory(prefix="hf-ssl-benchmark-") as out:
        command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", method.name, "--preset", preset,
                   *(["--dataset", dataset] if dataset else []), *schedule,
                   "--save_strategy", "no", "--logging_steps", "50", "--disable_tqdm", "true",
                   "--eval_protocols", "none", "--eval_baselines", "false", "--output_dir", out]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise HfSslError(f"the training run failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
        return json.loads((Path(out) / "ssl" / "training_info.json").read_text())["train_minutes"] * 60


def training_beside_reference(method: Method, preset: str, dataset: str | None, config, loaded: Any,
                              threads: int) -> dict[str, Any]:
    """The method's reference (`Method.reference_training`) and `hf-ssl pretrain`, each trained for the preset's
    epochs on the same data; both trained on the reference's count of units (word2vec: in-vocabulary words x
    epochs, the same vocabulary rule on the same tokens), so the ratio of units/s is that of the training times."""
    epochs = int(method.presets[preset].training.get("num_train_epochs", 1))
    reference = method.reference_training(config, loaded, epochs, threads)
    seconds = pretrain_seconds(method, preset, dataset, epochs)
    runs = [{"name": f"hf-ssl {method.display_name}", "seconds": seconds},
            {"name": reference.name, "seconds": reference.seconds}]
    for run in runs:
        run[f"{reference.unit}_per_second"] = reference.units / run["seconds"]
    return {"epochs": epochs, "unit": reference.unit, "units": reference.units, "runs": runs,
            "speed_ratio": reference.seconds / seconds}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_benchmark(method: Method, preset: str | None = None, dataset: str | None = None, steps: int = 10,
                  e2e_steps: int = 20, reference: bool = False, bf16: bool | None = None,
                  reference_threads: int = 2) -> dict[str, Any]:
    """Every measurement of the module docstring, as a dict (what `--json` prints). `bf16` None: the precision
    `hf-ssl pretrain` picks here by default (`bf16_by_default`)."""
    preset = preset or method.default_preset
    if reference and method.reference_model is None and method.reference_training is None:
        raise HfSslError(f"{method.name} has no reference implementation to compare with (--reference)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args = PretrainArguments(method=method.name, preset=preset, dataset=dataset)
    config, _ = build_config(method, args, {})
    if bf16 is None:
        bf16 = bf16_by_default(config, method.presets[preset])
    modality = get_modality(method.modality)
    loaded = modality.load_dataset(args.data_spec())
    batch_size = method.presets[preset].training.get("per_device_train_batch_size", 8)
    with tempfile.TemporaryDirectory(prefix="hf-ssl-benchmark-") as work_dir:
        prepared = modality.prepare(config, loaded, StartingPoint(), work_dir)
    collate = method.make_collator(config)
    examples = fetch_examples(prepared.train_dataset, [i % len(prepared.train_dataset) for i in range(batch_size)])
    collate(examples)  # warm-up (kernels, caches)
    start = time.perf_counter()
    for _ in range(3):
        batch = collate(examples)
    data_seconds = (time.perf_counter() - start) / 3
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    torch.manual_seed(0)
    model = method.model_class(config).to(device)
    models = {f"hf-ssl {method.display_name}": model}
    if reference and method.reference_model is not None:
        reference_model = method.reference_model(model).to(device)
        models[type(reference_model).__name__] = reference_model
    peak = matmul_peak(device, torch.bfloat16 if bf16 else torch.float32)
    timings = time_training_steps(models, batch, steps, bf16, peak)
    if bf16 and len(models) > 1:
        # the reference as it runs by default, in fp32: what a user of it without autocast gets
        name, reference_model = list(models.items())[1]
        timings += time_training_steps({f"{name} (fp32)": reference_model}, batch, steps, False,
                                       matmul_peak(device, torch.float32))
    ours = timings[0]
    return {
        "method": method.name, "preset": preset, "dataset": loaded.name,
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda" else
                   f"CPU, {torch.get_num_threads()} threads"),
        "precision": "bf16 autocast" if bf16 else "fp32", "batch_size": _batch_size(batch),
        "matmul_peak_flops": peak,
        "model_step": [asdict(t) for t in timings],
        "data": {"seconds_per_batch": data_seconds,
                 "share_if_not_overlapped": data_seconds / (data_seconds + ours.seconds_per_step)},
        "end_to_end": end_to_end(method, preset, dataset, e2e_steps, bf16) if e2e_steps > 0 else None,
        "peak_memory_mb": peak_memory_mb(device),
        "training_beside_reference": (training_beside_reference(method, preset, dataset, config, loaded,
                                                                reference_threads)
                                      if reference and method.reference_training is not None else None),
    }


def format_table(result: dict[str, Any]) -> str:
    """The benchmark as a Markdown table (one column per implementation) and the lines that have no reference."""
    steps = result["model_step"]
    lines = [f"{result['method']} `{result['preset']}` on {result['dataset']}, batch {result['batch_size']}, "
             f"{result['precision']}, {result['device']}; matmul peak {result['matmul_peak_flops'] / 1e9:.0f} GFLOP/s",
             "", "| model step | " + " | ".join(s["name"] for s in steps) + " |",
             "|---|" + "---|" * len(steps)]
    rows = [("step time (ms)", lambda s: f"{1e3 * s['seconds_per_step']:.1f}"),
            ("examples/s", lambda s: f"{s['examples_per_second']:.1f}"),
            ("GFLOP per step", lambda s: f"{s['flops_per_step'] / 1e9:.2f}"),
            ("achieved GFLOP/s", lambda s: f"{s['achieved_flops'] / 1e9:.1f}"),
            ("MFU", lambda s: f"{100 * s['mfu']:.1f}%")]
    lines += [f"| {label} | " + " | ".join(cell(s) for s in steps) + " |" for label, cell in rows]
    for other in steps[1:]:
        lines.append(("\n" if other is steps[1] else "") + f"hf-ssl / {other['name']} examples/s: "
                     f"{steps[0]['examples_per_second'] / other['examples_per_second']:.2f}x")
    data = result["data"]
    lines.append(f"\ndata pipeline: {1e3 * data['seconds_per_batch']:.1f} ms per batch, "
                 f"{100 * data['share_if_not_overlapped']:.1f}% of a step if nothing overlapped it")
    if result["end_to_end"]:
        e2e = result["end_to_end"]
        share = "n/a" if e2e["data_wait_share"] is None else f"{100 * e2e['data_wait_share']:.1f}%"
        lines.append(f"end to end (hf-ssl pretrain): {e2e['examples_per_second']:.1f} examples/s, waiting for data "
                     f"{share} of the time"
                     + "".join(f"; {e2e['examples_per_second'] / other['examples_per_second']:.2f}x {other['name']}'s "
                               "model step" for other in steps[1:]))
    lines.append(f"peak memory: {result['peak_memory_mb']:.0f} MB")
    training = result["training_beside_reference"]
    if training:
        runs, unit = training["runs"], training["unit"]
        lines += ["", f"training, {training['epochs']} epochs on {result['dataset']} ({training['units']:,} {unit}; "
                  "setup excluded)", "", "| training | " + " | ".join(r["name"] for r in runs) + " |",
                  "|---|" + "---|" * len(runs),
                  f"| {unit}/s | " + " | ".join(f"{r[f'{unit}_per_second']:,.0f}" for r in runs) + " |",
                  "| seconds | " + " | ".join(f"{r['seconds']:.1f}" for r in runs) + " |",
                  f"\nhf-ssl / {runs[1]['name']} {unit}/s: {training['speed_ratio']:.2f}x"]
    return "\n".join(lines)


__all__ = ["format_table", "matmul_peak", "pretrain_seconds", "run_benchmark", "time_training_steps",
           "training_beside_reference"]
