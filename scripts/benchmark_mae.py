"""Frozen-feature quality of pretrained encoders next to the two baselines every SSL number needs:
the same architecture randomly initialised, and the raw pixels.

    python scripts/benchmark_mae.py --dataset fashion_mnist --model OUT [--model OUT2 ...]

Prints a Markdown table: kNN (cosine, k=20, exp(sim/0.07) votes; plus plain 5-NN majority vote, the
protocol of the raw-pixel reference in shared notes) and linear probe, for each pooling of ViT features.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoConfig

from hf_ssl.data.datasets import load_image_dataset
from hf_ssl.data.images import images_to_tensor, labels_to_tensor
from hf_ssl.evaluation.features import extract_features
from hf_ssl.evaluation.knn import knn_accuracy
from hf_ssl.evaluation.linear_probe import linear_probe
from hf_ssl.nn.backbone import build_backbone, is_token_backbone, load_encoder


def scores(train_x, train_y, test_x, test_y, num_classes, linear: bool) -> dict[str, float]:
    result = {
        "knn20": knn_accuracy(train_x, train_y, test_x, test_y, num_classes, k=20, temperature=0.07),
        "knn5": knn_accuracy(train_x, train_y, test_x, test_y, num_classes, k=5, temperature=None),
    }
    if linear:
        result["linear"] = linear_probe(train_x, train_y, test_x, test_y, num_classes).accuracy
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--model", action="append", default=[], help="exported encoder folder (repeatable)")
    parser.add_argument("--no_linear", action="store_true", help="skip the linear probe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = load_image_dataset(args.dataset, args.data_dir)
    train, test = dataset.splits[dataset.train_split], dataset.splits[dataset.test_split]
    train_y, test_y = labels_to_tensor(train, dataset.label_column), labels_to_tensor(test, dataset.label_column)
    num_classes = int(train_y.max()) + 1
    rows = []

    start = time.time()
    side = train.features[dataset.image_column].shape[0]
    pixels = [images_to_tensor(split, dataset.image_column, side, 1).flatten(1).float() / 255 for split in (train, test)]
    rows.append((f"raw pixels ({pixels[0].shape[1]}-d)", "-", scores(pixels[0], train_y, pixels[1], test_y, num_classes,
                                                                    not args.no_linear), time.time() - start))

    for folder in args.model:
        encoder, processor = load_encoder(folder)
        size = processor.size["height"]
        torch.manual_seed(args.seed)
        random_encoder = build_backbone(AutoConfig.from_pretrained(folder))
        images = [images_to_tensor(split, dataset.image_column, size, encoder.config.num_channels) for split in (train, test)]
        poolings = ("mean", "cls") if is_token_backbone(encoder.config) else ("auto",)
        for label, model in ((f"random init ({folder})", random_encoder), (f"pretrained ({folder})", encoder)):
            for pooling in poolings:
                start = time.time()
                features = [extract_features(model, x, processor.image_mean, processor.image_std, pooling) for x in images]
                rows.append((label, pooling, scores(features[0], train_y, features[1], test_y, num_classes,
                                                    not args.no_linear), time.time() - start))

    print(f"\n{dataset.name}: train {len(train)}, test {len(test)} ({dataset.test_split} split)\n")
    print("| features | pooling | kNN k=20 weighted | kNN k=5 majority | linear probe | seconds |")
    print("|---|---|---|---|---|---|")
    for label, pooling, result, seconds in rows:
        linear = f"{100 * result['linear']:.2f}%" if "linear" in result else "-"
        print(f"| {label} | {pooling} | {100 * result['knn20']:.2f}% | {100 * result['knn5']:.2f}% | {linear} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
