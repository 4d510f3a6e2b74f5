"""Masked image modelling at one budget: BEiT (with a visual tokenizer trained first), SimMIM and MAE, each with its
`small` preset, i.e. the same encoder (ViT 192 wide x 6 layers, 32 px, patch 4), the same batch (128) and the same
number of optimizer steps, scored by kNN and linear probe on the test split next to a randomly initialised encoder
and the raw pixels.

    python scripts/benchmark_masked_image_modeling.py --dataset fashion_mnist --steps 400 --tokenizer_steps 400

Every method runs through the real `hf-ssl pretrain` command (its own process), which evaluates the exported
encoder (kNN k=20 with exp(sim/0.07) votes, cosine; L-BFGS logistic regression; mean of the patch tokens). The
tokenizer is trained first (`visual_tokenizer`, small preset, pixel target), and its codebook usage is measured on
the test split: the share of the codes that tokenize at least one test patch and the perplexity of the code
frequencies. Its training minutes are not in BEiT's row (BEiT's targets cost that extra run). Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_mae import scores  # noqa: E402  (kNN k=20 weighted, 5-NN majority, linear probe)

from hf_ssl.data.datasets import load_image_dataset  # noqa: E402
from hf_ssl.data.images import images_to_tensor, labels_to_tensor  # noqa: E402
from hf_ssl.evaluation.features import extract_features  # noqa: E402
from hf_ssl.nn.backbone import build_backbone  # noqa: E402
from hf_ssl.nn.vector_quantizer import perplexity  # noqa: E402
from hf_ssl.registry import get_method  # noqa: E402
from hf_ssl.training.pretrain import PretrainArguments, build_config  # noqa: E402


def pretrain(method: str, out: Path, steps: int, args: argparse.Namespace, *extra: str) -> dict:
    """Run `hf-ssl pretrain` for one method; returns its training record and evaluation results."""
    command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", method, "--preset", args.preset,
               "--dataset", args.dataset, "--max_steps", str(steps), "--seed", str(args.seed), "--save_strategy", "no",
               "--logging_steps", "50", "--output_dir", str(out), *extra]
    if args.data_dir:
        command += ["--data_dir", args.data_dir]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{method} failed:\n{result.stderr[-3000:]}")
    info = json.loads((out / "ssl" / "training_info.json").read_text())
    results_file = out / "eval_results.json"
    info["results"] = json.loads(results_file.read_text()) if results_file.is_file() else {}
    return info


@torch.no_grad()
def codebook_usage(tokenizer_out: Path, images: torch.Tensor, batch_size: int = 512) -> tuple[float, float, int]:
    """(share of codes used, perplexity of the code frequencies, codebook size) when tokenizing uint8 `images`."""
    from hf_ssl import VisualVQModel

    tokenizer = VisualVQModel.from_pretrained(tokenizer_out / "ssl").eval()
    config = tokenizer.config
    mean = torch.tensor(config.image_mean).view(1, -1, 1, 1)
    std = torch.tensor(config.image_std).view(1, -1, 1, 1)
    counts = torch.zeros(config.codebook_size)
    for start in range(0, images.shape[0], batch_size):
        pixels = (images[start:start + batch_size].float() / 255 - mean) / std
        counts += torch.bincount(tokenizer.tokenize(pixels).flatten(), minlength=config.codebook_size)
    return (counts > 0).float().mean().item(), perplexity(counts), config.codebook_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps of BEiT, SimMIM and MAE")
    parser.add_argument("--tokenizer_steps", type=int, default=400, help="optimizer steps of the visual tokenizer")
    parser.add_argument("--methods", default="beit,simmim,mae")
    parser.add_argument("--output_dir", default="runs/benchmark-masked-image-modeling")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    output_dir = Path(args.output_dir)
    start = time.time()

    dataset = load_image_dataset(args.dataset, args.data_dir)
    train, test = dataset.splits[dataset.train_split], dataset.splits[dataset.test_split]
    train_y, test_y = labels_to_tensor(train, dataset.label_column), labels_to_tensor(test, dataset.label_column)
    num_classes = int(train_y.max()) + 1
    rows = []   # (features, steps (epochs), minutes, scores, codebook)

    side = train.features[dataset.image_column].shape[0]
    pixels = [images_to_tensor(s, dataset.image_column, side, 1).flatten(1).float() / 255 for s in (train, test)]
    rows.append((f"raw pixels ({pixels[0].shape[1]}-d)", "-", "-", scores(pixels[0], train_y, pixels[1], test_y,
                                                                           num_classes, True), "-"))
    print(f"raw pixels done ({(time.time() - start) / 60:.1f} min)", flush=True)

    reference = build_config(get_method("mae"), PretrainArguments(method="mae", preset=args.preset), {})[0]
    size, channels = reference.image_size, reference.num_channels
    images = [images_to_tensor(s, dataset.image_column, size, channels) for s in (train, test)]
    torch.manual_seed(args.seed)
    random_encoder = build_backbone(reference.backbone_config)
    features = [extract_features(random_encoder, x, reference.image_mean, reference.image_std) for x in images]
    rows.append((f"same ViT, random init ({size} px)", "-", "-",
                 scores(features[0], train_y, features[1], test_y, num_classes, True), "-"))
    print(f"random init done ({(time.time() - start) / 60:.1f} min)", flush=True)

    tokenizer_out = output_dir / "visual_tokenizer"
    info = pretrain("visual_tokenizer", tokenizer_out, args.tokenizer_steps, args, "--eval_protocols", "none")
    used, code_perplexity, codebook_size = codebook_usage(tokenizer_out, images[1])
    codebook = f"{100 * used:.1f}% of {codebook_size} codes used, perplexity {code_perplexity:.0f}"
    rows.append(("visual tokenizer (BEiT's targets; its encoder not evaluated)",
                 f"{info['global_step']} ({info['epochs']:.2f})", f"{info['train_minutes']:.1f}", {}, codebook))
    print(f"visual_tokenizer: {codebook} ({(time.time() - start) / 60:.1f} min)", flush=True)

    method_flags = {"beit": ["--tokenizer", str(tokenizer_out)]}
    for name in args.methods.split(","):
        info = pretrain(name, output_dir / name, args.steps, args, "--eval_protocols", "knn,linear",
                        *method_flags.get(name, []))
        results = {"knn20": info["results"]["knn"]["value"], "linear": info["results"]["linear"]["value"]}
        loss = info["final_loss"]
        rows.append((f"`{name}`", f"{info['global_step']} ({info['epochs']:.2f})", f"{info['train_minutes']:.1f}",
                     results, "-" if loss is None else f"last logged loss {loss:.3f}"))
        print(f"{name}: kNN {100 * results['knn20']:.2f}%, linear {100 * results['linear']:.2f}% "
              f"({(time.time() - start) / 60:.1f} min)", flush=True)

    encoder = reference.backbone_config
    batch = get_method("mae").presets[args.preset].training["per_device_train_batch_size"]
    print(f"\n{dataset.name}: train {len(train)} (no labels for pretraining), test {len(test)}; preset {args.preset}: "
          f"ViT {encoder.hidden_size}x{encoder.num_hidden_layers}, {size} px, patch {reference.patch_size}, batch {batch}; "
          f"{(time.time() - start) / 60:.0f} min in all\n")
    print("| encoder | steps (epochs) | training minutes | kNN (k=20, weighted) | linear probe | notes |")
    print("|---|---|---|---|---|---|")
    percent = lambda result, key: f"{100 * result[key]:.2f}%" if key in result else "-"  # noqa: E731
    for label, steps, minutes, result, notes in rows:
        print(f"| {label} | {steps} | {minutes} | {percent(result, 'knn20')} | {percent(result, 'linear')} | {notes} |")


if __name__ == "__main__":
    main()
