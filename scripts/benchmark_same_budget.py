"""Image methods under the same wall-clock budget: each method's preset pretrained on the same data for the same
number of minutes, scored by kNN, linear probe and 10-shot probe on the test split, next to the raw pixels and a
randomly initialised twin of every backbone in the table.

    python scripts/benchmark_same_budget.py --dataset fashion_mnist --minutes 5 \\
        [--methods rotation,jigsaw,mae | --methods joint-embedding] [--protocols knn,linear,few-shot]
    python scripts/benchmark_same_budget.py --train_dataset emoji --dataset fashion_mnist --methods colorization

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
    args = parser.parse_args()
    overrides: dict[str, dict[str, str]] = {}
    shared = dict(item.split("=", 1) for item in args.all)
    for item in args.set:
        method_name, assignment = item.split(":", 1)
        field, value = assignment.split("=", 1)
        overrides.setdefault(method_name, {})[field] = value
    protocols = args.protocols.split(",")

    import hf_ssl  # noqa: F401  (registers the methods)

    names = ([n for n, m in METHODS.items() if issubclass(m.config_class, JointEmbeddingConfig)]
             if args.methods == "joint-embedding" else args.methods.split(","))
    overrides = {name: {**shared, **overrides.get(name, {})} for name in names}
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

    configs = {name: method_config(name, args.preset, overrides.get(name, {})) for name in names}
    images: dict[tuple[int, int], list[torch.Tensor]] = {}
    if not args.no_baselines:
        baselines(args, dataset, configs, images, scores, add_row)

    budget = 60 * args.minutes
    steps = {}
    source = load_image_dataset(args.train_dataset) if args.train_dataset else dataset
    for name in names:
        per_step = seconds_per_step(name, args.preset, source, args.calibration_steps, overrides.get(name, {}))
        steps[name] = (max(1, math.floor(budget / per_step)), per_step)
        print(f"calibrated {name}: {per_step:.3f} s/step -> {steps[name][0]} steps", flush=True)

    for name in names:
        max_steps, per_step = steps[name]
        out = Path(args.output_dir) / name
        command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", name, "--preset", args.preset,
                   "--dataset", args.train_dataset or args.dataset, "--max_steps", str(max_steps),
                   "--eval_protocols", "none" if args.train_dataset else args.protocols,
                   "--seed", str(args.seed), "--save_strategy", "no", "--output_dir", str(out)]
        if args.data_dir and not args.train_dataset:
            command += ["--data_dir", args.data_dir]
        for field, value in overrides.get(name, {}).items():
            command += [f"--{field}", value]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{name}: failed\n{result.stderr[-3000:]}", file=sys.stderr)
            continue
        info = json.loads((out / "ssl" / "training_info.json").read_text())
        if args.train_dataset:  # transfer: the export evaluated on --dataset, as users would
            command = [sys.executable, "-m", "hf_ssl.cli", "evaluate", "--model", str(out), "--dataset", args.dataset,
                       "--protocol", args.protocols] + (["--data_dir", args.data_dir] if args.data_dir else [])
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"{name}: evaluation failed\n{result.stderr[-3000:]}", file=sys.stderr)
                continue
            evaluation = json.loads(result.stdout[result.stdout.index("{"):])
        else:
            evaluation = json.loads((out / "eval_results.json").read_text())
        label = name + "".join(f" ({f}={v})" for f, v in overrides.get(name, {}).items() if f not in shared)
        add_row(label, info["architecture"] + f" {info['image_size']}px", f"{max_steps} ({per_step:.2f} s/step)",
                f"{info['epochs']:.2f}", f"{info['train_minutes']:.1f}", {p: evaluation[p]["value"] for p in protocols})

    trained_on = f"pretrained on {source.name}, evaluated on " if args.train_dataset else ""
    print(f"\n{trained_on}{dataset.name}: train {len(train)}, test {len(test)}; budget {args.minutes:g} min of training per "
          f"method (steps calibrated on this machine), preset {args.preset}; kNN k=20, cosine, exp(sim/0.07) votes; "
          "linear probe: logistic regression on frozen features; few-shot: 10 labels per class, 5 episodes\n")
    print(header)
    print("|---|---|---|---|---|" + "---|" * len(protocols))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
