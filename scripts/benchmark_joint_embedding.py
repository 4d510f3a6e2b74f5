"""Joint-embedding methods under the same wall-clock budget: each method's `small` preset pretrained on the
same data for the same number of minutes, scored with kNN on the test split, next to a randomly initialised
backbone and the raw pixels.

    python scripts/benchmark_joint_embedding.py --dataset fashion_mnist --minutes 5 [--methods simclr,byol]

Equal time, not equal steps: a method whose step is dearer (more views, a momentum encoder) gets fewer steps,
which is the trade-off a user with a fixed budget faces. For each method the script first times a few
optimizer steps in this process (collation and augmentation included, as Trainer does them), sets
`--max_steps` = budget / seconds per step so that the learning-rate schedule completes, then runs the real
`hf-ssl pretrain` command and reads the kNN accuracy it wrote. Run it on an otherwise idle machine: the
calibration and the run must see the same load. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

from hf_ssl.data.collators import UInt8ImageDataset
from hf_ssl.data.datasets import load_image_dataset
from hf_ssl.data.images import images_to_tensor, labels_to_tensor
from hf_ssl.evaluation.features import extract_features
from hf_ssl.evaluation.knn import knn_accuracy
from hf_ssl.modeling.joint_embedding import JointEmbeddingConfig
from hf_ssl.nn.backbone import build_backbone
from hf_ssl.registry import METHODS, get_method
from hf_ssl.training.pretrain import PretrainArguments, build_config


def seconds_per_step(method_name: str, preset: str, images: torch.Tensor, steps: int) -> float:
    """Median time of `steps` optimizer steps (after two warm-up steps) of the preset's model, batch size and
    learning rate: collate + augment, forward, backward, AdamW, the per-step hook. (With one warm-up step and 4
    timed ones, multi-crop methods were timed 1.6x slower than they then ran: allocator and kernel warm-up.)"""
    method = get_method(method_name)
    config, _ = build_config(method, PretrainArguments(method=method_name, preset=preset), {})
    training = method.presets[preset].training
    batch_size = training["per_device_train_batch_size"]
    model = method.model_class(config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=training["learning_rate"])
    collate = method.make_collator(config)
    dataset = UInt8ImageDataset(images)
    generator = torch.Generator().manual_seed(0)
    times = []
    for step in range(steps + 2):
        start = time.perf_counter()
        indices = torch.randint(len(dataset), (batch_size,), generator=generator)
        batch = collate([dataset[int(i)] for i in indices])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.optimizer_step_done(step + 1, (step + 1) / 1000)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--methods", default="all", help="comma-separated, or 'all' joint-embedding methods")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per method")
    parser.add_argument("--calibration_steps", type=int, default=6)
    parser.add_argument("--output_dir", default="runs/benchmark-joint-embedding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="METHOD:FIELD=VALUE",
                        help="override a method's config field (repeatable), e.g. swav:freeze_prototypes_steps=5")
    args = parser.parse_args()
    overrides: dict[str, dict[str, str]] = {}
    for item in args.set:
        method_name, assignment = item.split(":", 1)
        field, value = assignment.split("=", 1)
        overrides.setdefault(method_name, {})[field] = value

    import hf_ssl  # noqa: F401  (registers the methods)

    names = ([n for n, m in METHODS.items() if issubclass(m.config_class, JointEmbeddingConfig)]
             if args.methods == "all" else args.methods.split(","))
    dataset = load_image_dataset(args.dataset, args.data_dir)
    train, test = dataset.splits[dataset.train_split], dataset.splits[dataset.test_split]
    train_y, test_y = labels_to_tensor(train, dataset.label_column), labels_to_tensor(test, dataset.label_column)
    num_classes = int(train_y.max()) + 1
    knn = lambda a, b: knn_accuracy(a, train_y, b, test_y, num_classes, k=20, temperature=0.07)  # noqa: E731
    rows: list[tuple[str, str, str, str, str, float]] = []

    side = train.features[dataset.image_column].shape[0]
    pixels = [images_to_tensor(s, dataset.image_column, side, 1).flatten(1).float() / 255 for s in (train, test)]
    rows.append(("raw pixels", f"{pixels[0].shape[1]}-d", "-", "-", "-", knn(*pixels)))

    reference = build_config(get_method(names[0]), PretrainArguments(method=names[0], preset=args.preset), {})[0]
    size, channels = reference.image_size, reference.num_channels
    images = {split: images_to_tensor(data, dataset.image_column, size, channels) for split, data in ((0, train), (1, test))}
    torch.manual_seed(args.seed)
    random_backbone = build_backbone(reference.backbone_config)
    features = [extract_features(random_backbone, images[i], reference.image_mean, reference.image_std) for i in (0, 1)]
    rows.append(("random init", type(random_backbone).__name__ + f" {size}px", "-", "-", "-", knn(*features)))
    print(f"| {rows[0][0]} | kNN {100 * rows[0][5]:.2f}% |\n| {rows[1][0]} | kNN {100 * rows[1][5]:.2f}% |", flush=True)

    budget = 60 * args.minutes
    for name in names:
        per_step = seconds_per_step(name, args.preset, images[0], args.calibration_steps)
        max_steps = max(1, math.floor(budget / per_step))
        out = Path(args.output_dir) / name
        command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", name, "--preset", args.preset,
                   "--dataset", args.dataset, "--max_steps", str(max_steps), "--eval_protocols", "knn",
                   "--seed", str(args.seed), "--save_strategy", "no", "--output_dir", str(out)]
        if args.data_dir:
            command += ["--data_dir", args.data_dir]
        for field, value in overrides.get(name, {}).items():
            command += [f"--{field}", value]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{name}: failed\n{result.stderr[-3000:]}", file=sys.stderr)
            continue
        info = json.loads((out / "ssl" / "training_info.json").read_text())
        accuracy = json.loads((out / "eval_results.json").read_text())["knn"]["value"]
        label = name + "".join(f" ({f}={v})" for f, v in overrides.get(name, {}).items())
        rows.append((label, info["architecture"] + f" {info['image_size']}px", f"{max_steps} ({per_step:.2f} s/step)",
                     f"{info['epochs']:.2f}", f"{info['train_minutes']:.1f}", accuracy))
        print(f"| {name} | {rows[-1][2]} | {rows[-1][4]} min | kNN {100 * accuracy:.2f}% |", flush=True)

    print(f"\n{dataset.name}: train {len(train)}, test {len(test)}; budget {args.minutes:g} min of training per "
          f"method, preset {args.preset}; kNN k=20, cosine, exp(sim/0.07) votes\n")
    print("| method | encoder | steps | epochs | training minutes | kNN accuracy |")
    print("|---|---|---|---|---|---|")
    for name, encoder, steps, epochs, minutes, accuracy in rows:
        print(f"| {name} | {encoder} | {steps} | {epochs} | {minutes} | {100 * accuracy:.2f}% |")


if __name__ == "__main__":
    main()
