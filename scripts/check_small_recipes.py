"""Do the `small` recipes still train Fashion-MNIST in at most 15 minutes on this machine?

Each image method's `small` preset is a 15-minute recipe (`modeling/presets.py`): its epochs were sized from the
steps/s one machine measured. When the machine changes (this project's moved from a 2-core AMD EPYC to a 2-core
Intel Xeon with AMX on 7 December 2026), this script re-times every recipe the way it runs, `hf-ssl pretrain` with
its default precision and data pipeline, and projects each one's whole schedule:

    python scripts/check_small_recipes.py [--methods mae,simclr] [--steps 80]

For each method, one `hf-ssl pretrain --method M --dataset fashion_mnist --max_steps STEPS` (no evaluation, no
checkpoint), one at a time: run the script on an otherwise idle machine. Trainer's training time includes the first
steps' warm-up, so the projection errs long. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os

from transformers import TrainingArguments

from hf_ssl.benchmark import pretrain_seconds
from hf_ssl.data.datasets import load_image_dataset
from hf_ssl.errors import HfSslError
from hf_ssl.registry import METHODS, get_method
from hf_ssl.training.pretrain import epoch_steps

BUDGET_MINUTES = 15.0


def fifteen_minute_methods() -> list[str]:
    """The methods whose `small` preset is a 15-minute schedule (`fifteen_minute_schedule`: it sets min_steps)."""
    return [name for name, method in METHODS.items()
            if "small" in method.presets and "min_steps" in method.presets["small"].training]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=None, help="comma-separated (default: every 15-minute recipe)")
    parser.add_argument("--steps", type=int, default=80, help="optimizer steps timed per method")
    args = parser.parse_args()
    names = args.methods.split(",") if args.methods else fifteen_minute_methods()
    dataset = load_image_dataset("fashion_mnist")
    train_images = len(dataset.splits[dataset.train_split])
    print(f"| method | batch | epochs | steps | steps/s here | projected training minutes "
          f"| within {BUDGET_MINUTES:g} |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        training = get_method(name).presets["small"].training
        batch, epochs = training["per_device_train_batch_size"], training["num_train_epochs"]
        schedule = TrainingArguments(output_dir="unused", per_device_train_batch_size=batch, num_train_epochs=epochs)
        scheduled = max(epoch_steps(schedule, train_images), training["min_steps"])  # as `hf-ssl pretrain` counts
        try:
            rate = args.steps / pretrain_seconds(get_method(name), "small", "fashion_mnist", max_steps=args.steps)
        except HfSslError as error:
            raise SystemExit(f"{name}: {error}") from None
        minutes = scheduled / rate / 60
        print(f"| {name} | {batch} | {epochs:g} | {scheduled} | {rate:.3f} | {minutes:.1f} | "
              f"{'yes' if minutes <= BUDGET_MINUTES else '**no**'} |", flush=True)
    print(f"\n{args.steps} steps of `hf-ssl pretrain` each (its default precision), alone, on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
