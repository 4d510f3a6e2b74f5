"""The reference checkpoints' cards in `model_cards/reference/<family>/`: one run per method family through the real
`hf-ssl pretrain` command, whose generated card (README.md), measured results and plots are copied there.

    python scripts/reference_cards.py --families masked-image,word-vectors
    python scripts/reference_cards.py --list

The recipes are the CPU budgets this project can afford on a 2-core machine (the whole 15-minute `small` recipe
for MAE and SimCLR, a few hundred optimizer steps of the `small` presets for the others): the cards say so, with the
numbers each run measured. A family whose data is missing (Fashion-MNIST, Austen, the emoji font) fails with the
one-line error of `hf-ssl pretrain` and the others go on.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

# family -> (method, the `hf-ssl pretrain` flags of its reference run)
RECIPES: dict[str, tuple[str, list[str]]] = {
    # MAE's and SimCLR's whole 15-minute recipes: a few hundred steps leave MAE below the raw pixels and SimCLR below
    # its random-init twin
    "masked-image": ("mae", ["--preset", "small", "--dataset", "fashion_mnist", "--logging_steps", "10",
                             "--eval_baselines", "true"]),
    "joint-embedding": ("simclr", ["--preset", "small", "--dataset", "fashion_mnist", "--logging_steps", "10"]),
    "image-text": ("clip", ["--preset", "small", "--dataset", "emoji", "--max_steps", "200", "--logging_steps", "10"]),
    # BERT-Mini / GPT-2 256x4 on 64-token blocks: about 0.7 s a step on one core of this machine
    "masked-language": ("mlm", ["--preset", "small", "--dataset", "austen", "--max_length", "64",
                                "--max_steps", "2500", "--logging_steps", "50"]),
    "causal-language": ("clm", ["--preset", "small", "--dataset", "austen", "--max_length", "64",
                                "--max_steps", "2500", "--logging_steps", "50"]),
    "word-vectors": ("word2vec", ["--preset", "small", "--dataset", "austen", "--logging_steps", "200"]),
}
COPIED = ("README.md", "eval_results.json", "plots")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(RECIPES), help="comma-separated, of: " + ", ".join(RECIPES))
    parser.add_argument("--runs_dir", default="runs/reference", help="where the full OUT folders are written")
    parser.add_argument("--cards_dir", default=str(REPOSITORY / "model_cards" / "reference"))
    parser.add_argument("--list", action="store_true", help="print the recipes and exit")
    args = parser.parse_args()
    if args.list:
        for family, (method, flags) in RECIPES.items():
            print(f"{family}: hf-ssl pretrain --method {method} {' '.join(flags)}")
        return
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in RECIPES]
    if unknown:
        parser.error(f"unknown family '{unknown[0]}' (available: {', '.join(RECIPES)})")
    failed = []
    for family in families:
        method, flags = RECIPES[family]
        out = Path(args.runs_dir) / f"{method}-{family}"
        # A card is a fresh run: `hf-ssl pretrain` resumes from the checkpoints an earlier run left in OUT, and one
        # of an older recipe that had trained more steps than the new one would be exported as it was, untrained.
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", method, *flags, "--output_dir", str(out)]
        start = time.time()
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            failed.append(family)
            print(f"{family}: failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
            continue
        target = Path(args.cards_dir) / family
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in COPIED:
            source = out / name
            if source.is_dir():
                shutil.copytree(source, target / name)
            elif source.is_file():
                shutil.copy2(source, target / name)
        lines = result.stdout.splitlines()
        exported = next((i for i, line in enumerate(lines) if line.startswith("Exported to")), len(lines))
        summary = lines[exported + 1:]  # `hf-ssl pretrain` ends with one line per measured result
        print(f"{family}: {(time.time() - start) / 60:.1f} min -> {target}; " + "; ".join(summary), flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
