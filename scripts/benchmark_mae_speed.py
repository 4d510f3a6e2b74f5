"""Training-step speed of hf-ssl's MAE against transformers' ViTMAEForPreTraining (the port of the reference
code) with identical weights, in the same process, timed in alternation (the machine is noisy: compare the
ratio, not the absolute numbers).

    python scripts/benchmark_mae_speed.py --preset small --batch_size 128 --steps 10 [--bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hf_ssl import get_method
from hf_ssl.modeling.mae.convert_mae import to_vit_mae
from hf_ssl.training.pretrain import PretrainArguments, build_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (both models)")
    args = parser.parse_args()

    method = get_method("mae")
    config, _ = build_config(method, PretrainArguments(preset=args.preset), {})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    ours = method.model_class(config).to(device).train()
    reference = to_vit_mae(ours).to(device).train()
    models = {"hf-ssl MAE": ours, "transformers ViTMAEForPreTraining": reference}
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
    images = torch.randn(args.batch_size, config.num_channels, config.image_size, config.image_size, device=device)
    times: dict[str, list[float]] = {name: [] for name in models}
    for step in range(args.steps + 2):  # two warm-up steps
        for name, model in models.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=args.bf16):
                loss = model(images).loss
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["transformers ViTMAEForPreTraining"])
    print(f"\nMAE preset {args.preset}: batch {args.batch_size}, {config.image_size}px, patch {config.patch_size}, "
          f"{device}{', bf16' if args.bf16 else ''}, median of {args.steps} steps\n")
    print("| implementation | s/step | images/s | time vs reference |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {args.batch_size / median:.0f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
