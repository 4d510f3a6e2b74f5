"""Image methods under the same wall-clock budget: each method's preset pretrained on the same data for the same
number of minutes, scored by kNN, linear probe and 10-shot probe on the test split, next to the raw pixels and a
randomly initialised twin of every backbone in the table.

    python scripts/benchmark_same_budget.py --dataset fashion_mnist --minutes 5 \\
        [--methods rotation,jigsaw,mae | --methods joint-embedding] [--protocols knn,linear,few-shot]
    python scripts/benchmark_same_budget.py --train_dataset emoji --dataset fashion_mnist --methods colorization
    python scripts/benchmark_same_budget.py --methods supervised,fixmatch,fixmatch#from-autoencoder \\
        --set fixmatch#from-autoencoder:backbone=AUTOENCODER_OUT --sweep labels_per_class=4,25,400 \\
        --protocols accuracy --no_baselines --minutes 3 [--seeds 0,1,2]

With `--train_dataset`, the methods pretrain on that data (colorization needs colour images) and the exported
encoders are evaluated by transfer on `--dataset` (`hf-ssl evaluate`), as the papers' transfer tables do.

Equal time, not equal steps: a method whose step is dearer (more views, nine tiles, a decoder) gets fewer steps,
which is the trade-off a user with a fixed budget faces. The script first times a few optimizer steps of every
method in this process (collation and augmentation included, as Trainer does them) and turns the budget into
`--max_steps` = budget / seconds per step, so that each learning-rate schedule completes; only then does it run
the real `hf-ssl pretrain` commands and read the scores they wrote. Calibrating every method before training any
means the step counts reflect an idle machine even if something else starts later: run the calibration on an
otherwise idle machine. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import math
import tempfile
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import TrainingArguments

from hf_ssl.data.datasets import ImageDataset, load_image_dataset
from hf_ssl.data.images import images_to_tensor, labels_to_tensor
from hf_ssl.evaluation.features import extract_features
from hf_ssl.evaluation.image_protocols import FROZEN_PROTOCOLS, frozen_feature_protocol
from hf_ssl.modalities import StartingPoint, get_modality
from hf_ssl.modeling.joint_embedding import JointEmbeddingConfig
from hf_ssl.nn.backbone import build_backbone
from hf_ssl.registry import METHODS, get_method
from hf_ssl.training.pretrain import PretrainArguments, build_config


def method_config(method_name: str, preset: str, overrides: dict[str, str]):
    """The config `hf-ssl pretrain --method NAME --preset PRESET --FIELD VALUE ...` builds: `overrides` may name run
    flags (`backbone`, `image_size`, `patch_size`) as well as the method's config fields."""
    run_flags = {f.name for f in dataclasses.fields(PretrainArguments)}
    values = {k: _literal(v) for k, v in overrides.items()}
    arguments = PretrainArguments(method=method_name, preset=preset, **{k: v for k, v in values.items() if k in run_flags})
    training_flags = {f.name for f in dataclasses.fields(TrainingArguments)}  # go to the command line only
    return build_config(get_method(method_name), arguments,
                        {k: v for k, v in values.items() if k not in run_flags | training_flags})[0]


def _literal(text: str):
    """A flag's value as the command line's parser types it: a number or a boolean when it reads as one."""
    try:
        return ast.literal_eval({"true": "True", "false": "False"}.get(text, text))
    except (ValueError, SyntaxError):
        return text


def seconds_per_step(method_name: str, preset: str, dataset: ImageDataset, steps: int,
                     overrides: dict[str, str], progress: float = 0.6) -> float:
    """Median time of `steps` optimizer steps (after two warm-up steps) of the preset's model, batch size and
    learning rate on the training data its modality prepares from `dataset` (a semi-supervised method's labelled +
    unlabelled batches too): collate + augment, forward, backward, AdamW, the per-step hook. The steps are timed at
    `progress` into training, where every method does its full step (a self-training round after the first
    teacher's, a ramped-up unlabelled loss). (With one warm-up step and 4 timed ones, multi-crop methods were timed
    1.6x slower than they then ran: allocator and kernel warm-up.)"""
    method = get_method(method_name)
    config = method_config(method_name, preset, overrides)
    training = method.presets[preset].training
    batch_size = int(overrides.get("per_device_train_batch_size", training["per_device_train_batch_size"]))
    with tempfile.TemporaryDirectory() as work_dir:
        prepared = get_modality(method.modality).prepare(config, dataset, StartingPoint(), work_dir)
    model = method.model_class(config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=training["learning_rate"])
    collate = method.make_collator(config)
    examples = prepared.train_dataset
    # Trainer keeps the last, short batch (drop_last is off): a training set smaller than the batch (the supervised
    # baseline's 40 labelled images) is one short batch every step, and timing full batches over-estimated its step
    # 1.6x (its first 3-minute run trained 1.5 minutes).
    batch_size = min(batch_size, len(examples))
    generator = torch.Generator().manual_seed(0)
    times = []
    model.optimizer_step_done(0, progress)  # enter that phase of training (a round's teacher is taken here)
    for step in range(steps + 2):
        start = time.perf_counter()
        indices = torch.randint(len(examples), (batch_size,), generator=generator)
        batch = collate([examples[int(i)] for i in indices])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.optimizer_step_done(step + 1, progress)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def baselines(args, dataset, configs, images, scores, add_row) -> None:
    """The rows that give the table its meaning: the raw pixels, and one randomly initialised twin per distinct
    backbone (e.g. the ResNet-18 of the pretext tasks and MAE's ViT), evaluated with the pooling its method uses."""
    train, test = dataset.splits[dataset.train_split], dataset.splits[dataset.test_split]
    side = train.features[dataset.image_column].shape[0]
    pixels = [images_to_tensor(s, dataset.image_column, side, 1).flatten(1).float() / 255 for s in (train, test)]
    add_row("raw pixels", f"{pixels[0].shape[1]}-d", "-", "-", "-", scores(*pixels))
    # One randomly initialised twin per distinct backbone (e.g. the ResNet-18 of the pretext tasks and MAE's ViT),
    # evaluated with the pooling its method's features use.
    twins: dict[str, tuple[str, ...]] = {}
    for name, config in configs.items():
        key = config.backbone_config.to_json_string() + f"{config.image_size}/{config.num_channels}"
        twins.setdefault(key, (name,))
    for (name,) in twins.values():
        config = configs[name]
        shape = (config.image_size, config.num_channels)
        if shape not in images:
            images[shape] = [images_to_tensor(s, dataset.image_column, *shape) for s in (train, test)]
        torch.manual_seed(args.seed)
        backbone = build_backbone(config.backbone_config)
        pooling = get_method(name).model_class.feature_pooling
        features = [extract_features(backbone, x, config.image_mean, config.image_std, pooling)
                    for x in images[shape]]
        add_row(f"random init (twin of {name})", f"{type(backbone).__name__} {config.image_size}px", "-", "-", "-",
                scores(*features))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--train_dataset", default=None,
                        help="pretrain on this dataset instead, then evaluate the exports on --dataset (transfer)")
    parser.add_argument("--methods", default="joint-embedding",
                        help="comma-separated method names, or 'joint-embedding' for that whole family")
    parser.add_argument("--protocols", default="knn", help=f"comma-separated, of {', '.join(FROZEN_PROTOCOLS)}")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per method")
    parser.add_argument("--no_baselines", action="store_true",
                        help="skip the raw-pixel and random-init rows (already measured in another run)")
    parser.add_argument("--calibration_steps", type=int, default=6)
    parser.add_argument("--output_dir", default="runs/benchmark-same-budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="append", default=[], metavar="FIELD=VALUE",
                        help="a flag for every method (repeatable), e.g. labels_per_class=4")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD:FIELD=VALUE",
                        help="override a method's config field (repeatable), e.g. swav:freeze_prototypes_steps=5")
    parser.add_argument("--sweep", default=None, metavar="FIELD=V1,V2,...",
                        help="run every method at each value of one flag, e.g. labels_per_class=4,25,400 (USB's "
                             "table); the summary has one column per value")
    parser.add_argument("--seeds", default=None, metavar="S1,S2,...",
                        help="repeat every run with these training seeds and report mean +- standard deviation; a "
                             "semi-supervised method's labelled subset is drawn with the same seed (USB varies both)")
    args = parser.parse_args()
    overrides: dict[str, dict[str, str]] = {}
    shared = dict(item.split("=", 1) for item in args.all)
    for item in args.set:
        row, assignment = item.split(":", 1)
        field, value = assignment.split("=", 1)
        overrides.setdefault(row, {})[field] = value
    protocols = args.protocols.split(",")
    sweep_field, sweep_values = (args.sweep.split("=", 1)[0], args.sweep.split("=", 1)[1].split(",")) if args.sweep \
        else (None, [None])
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]

    import hf_ssl  # noqa: F401  (registers the methods)

    # A row is a method name, or NAME#TAG for a second row of the same method with other --set flags (e.g.
    # `fixmatch#from-autoencoder` with `--set fixmatch#from-autoencoder:backbone=OUT`).
    rows_keys = ([n for n, m in METHODS.items() if issubclass(m.config_class, JointEmbeddingConfig)]
                 if args.methods == "joint-embedding" else args.methods.split(","))
    method_of = {key: key.split("#")[0] for key in rows_keys}
    overrides = {key: {**shared, **overrides.get(key, {})} for key in rows_keys}
    dataset = load_image_dataset(args.dataset, args.data_dir)
    train, test = dataset.splits[dataset.train_split], dataset.splits[dataset.test_split]
    train_y, test_y = labels_to_tensor(train, dataset.label_column), labels_to_tensor(test, dataset.label_column)
    num_classes = int(train_y.max()) + 1

    def scores(train_features: torch.Tensor, test_features: torch.Tensor) -> dict[str, float]:
        return {p: frozen_feature_protocol(p, train_features, train_y, test_features, test_y, num_classes)[0]
                for p in protocols}

    header = "| method | encoder | steps | epochs | training minutes | " + " | ".join(protocols) + " |"
    rows: list[str] = []

    def add_row(name: str, encoder: str, steps: str, epochs: str, minutes: str, values: dict[str, float]) -> None:
        rows.append(f"| {name} | {encoder} | {steps} | {epochs} | {minutes} | "
                    + " | ".join(f"{100 * values[p]:.2f}%" for p in protocols) + " |")
        print(rows[-1], flush=True)

    def run_overrides(key: str, value: str | None, seed: int) -> dict[str, str]:
        flags = {**overrides[key], **({sweep_field: value} if sweep_field else {})}
        if args.seeds and "subset_seed" in {f.name for f in dataclasses.fields(get_method(method_of[key]).config_class)}:
            flags["subset_seed"] = str(seed)
        return flags

    configs = {key: method_config(method_of[key], args.preset, run_overrides(key, sweep_values[0], seeds[0]))
               for key in rows_keys}
    images: dict[tuple[int, int], list[torch.Tensor]] = {}
    if not args.no_baselines:
        baselines(args, dataset, configs, images, scores, add_row)

    budget = 60 * args.minutes
    steps = {}
    source = load_image_dataset(args.train_dataset) if args.train_dataset else dataset
    for key in rows_keys:
        for value in sweep_values:  # per value: the labelled subset's size can change the batch (see seconds_per_step)
            per_step = seconds_per_step(method_of[key], args.preset, source, args.calibration_steps,
                                        run_overrides(key, value, seeds[0]))
            steps[key, value] = (max(1, math.floor(budget / per_step)), per_step)
            print(f"calibrated {key}{f' at {sweep_field}={value}' if sweep_field else ''}: {per_step:.3f} s/step -> "
                  f"{steps[key, value][0]} steps", flush=True)

    results: dict[tuple[str, str | None], list[dict[str, float]]] = {}
    for value in sweep_values:  # a column at a time: an interrupted sweep still compares every method
        for key in rows_keys:
            for seed in seeds:
                max_steps, per_step = steps[key, value]
                out = Path(args.output_dir) / key.replace("#", "-")
                if sweep_field:
                    out /= f"{sweep_field}={value}"
                if args.seeds:
                    out /= f"seed{seed}"
                flags = run_overrides(key, value, seed)
                name = method_of[key]
                command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", name, "--preset", args.preset,
                           "--dataset", args.train_dataset or args.dataset, "--max_steps", str(max_steps),
                           "--eval_protocols", "none" if args.train_dataset else args.protocols,
                           "--seed", str(seed), "--save_strategy", "no", "--output_dir", str(out)]
                if args.data_dir and not args.train_dataset:
                    command += ["--data_dir", args.data_dir]
                for field, flag_value in flags.items():
                    command += [f"--{field}", flag_value]
                result = subprocess.run(command, capture_output=True, text=True)
                if result.returncode != 0:
                    print(f"{key}: failed\n{result.stderr[-3000:]}", file=sys.stderr)
                    continue
                info = json.loads((out / "ssl" / "training_info.json").read_text())
                if args.train_dataset:  # transfer: the export evaluated on --dataset, as users would
                    command = [sys.executable, "-m", "hf_ssl.cli", "evaluate", "--model", str(out), "--dataset",
                               args.dataset, "--protocol", args.protocols] + (
                                   ["--data_dir", args.data_dir] if args.data_dir else [])
                    result = subprocess.run(command, capture_output=True, text=True)
                    if result.returncode != 0:
                        print(f"{key}: evaluation failed\n{result.stderr[-3000:]}", file=sys.stderr)
                        continue
                    evaluation = json.loads(result.stdout[result.stdout.index("{"):])
                else:
                    evaluation = json.loads((out / "eval_results.json").read_text())
                values = {p: evaluation[p]["value"] for p in protocols}
                results.setdefault((key, value), []).append(values)
                label = key + "".join(f" ({f}={v})" for f, v in flags.items() if f not in shared and f != "subset_seed")
                label += f" seed {seed}" if args.seeds else ""
                add_row(label, info["architecture"] + f" {info['image_size']}px",
                        f"{max_steps} ({per_step:.2f} s/step)", f"{info['epochs']:.2f}", f"{info['train_minutes']:.1f}",
                        values)

    trained_on = f"pretrained on {source.name}, evaluated on " if args.train_dataset else ""
    print(f"\n{trained_on}{dataset.name}: train {len(train)}, test {len(test)}; budget {args.minutes:g} min of training per "
          f"method (steps calibrated on this machine), preset {args.preset}; kNN k=20, cosine, exp(sim/0.07) votes; "
          "linear probe: logistic regression on frozen features; few-shot: 10 labels per class, 5 episodes\n")
    print(header)
    print("|---|---|---|---|---|" + "---|" * len(protocols))
    print("\n".join(rows))
    if sweep_field or args.seeds:
        print_summary(rows_keys, sweep_field, sweep_values, protocols, steps, results, len(seeds))


def print_summary(keys: list[str], field: str | None, values: list[str | None], protocols: list[str],
                  steps: dict, results: dict, num_seeds: int) -> None:
    """One row per method, one column per swept value and protocol: the mean over the seeds, +- their (sample)
    standard deviation when there are several."""
    columns = [(v, p) for v in values for p in protocols]

    def title(value: str | None, protocol: str) -> str:
        return (f"{field}={value}" if field else "") + (f" {protocol}" if len(protocols) > 1 or not field else "")

    print(f"\nsummary: mean of {num_seeds} seed(s){' +- standard deviation' if num_seeds > 1 else ''}; steps per "
          "column in brackets\n")
    print("| method | " + " | ".join(title(v, p) for v, p in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for key in keys:
        cells = []
        for value, protocol in columns:
            runs = torch.tensor([r[protocol] for r in results.get((key, value), [])], dtype=torch.float64) * 100
            if len(runs) == 0:
                cells.append("failed")
                continue
            cell = f"{runs.mean():.2f}" + (f" +- {runs.std():.2f}" if len(runs) > 1 else "") + "%"
            cells.append(cell + f" ({steps[key, value][0]})")
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
