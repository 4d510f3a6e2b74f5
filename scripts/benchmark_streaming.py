"""Does training on an image folder cost memory and time that grow with the folder? (issue 20)

Writes image folders of each size (JPEG, 64 x 64, smooth random colour fields, no class subfolders: nothing to
evaluate, so that only training is measured), then runs the same `hf-ssl pretrain` on each (default: SimCLR tiny at
64 px, 20 steps) and prints its wall time and the peak memory (PSS) of the whole process tree (the training
process and its DataLoader workers, sampled every 50 ms), and the ratios against the smallest folder.

    python scripts/benchmark_streaming.py                       # 2,000 and 20,000 images
    python scripts/benchmark_streaming.py --sizes 2000 20000 --extra_args --dataloader_num_workers 0

The code measured is the hf_ssl that `python -m hf_ssl.cli` imports (PYTHONPATH selects a checkout: run it once
with the code before a change and once after).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image


def write_folder(root: Path, count: int, size: int) -> Path:
    """`count` JPEG images of `size` px in `root` (reused when complete): each a seeded 4 x 4 colour field upsampled
    bilinearly, so that files are as small and as cheap to decode as photographs of that size, not as noise."""
    folder = root / f"{count}-{size}px"
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        coarse.resize((size, size), Image.BILINEAR).save(folder / f"{i:07d}.jpg", quality=90)
    done.touch()
    return folder


def measure(command: list[str]) -> tuple[float, float]:
    """Run `command`; its wall time (s) and the peak of the summed proportional set size (PSS: resident memory, pages shared between processes counted once in all) of it and its descendants (MiB)."""
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
        root = psutil.Process(process.pid)
        peak = 0
        while process.poll() is None:
            try:
                peak = max(peak, sum(p.memory_full_info().pss for p in [root, *root.children(recursive=True)]))
            except psutil.Error:  # a worker ended while it was being measured
                pass
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            log.seek(0)
            sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{log.read()[-2000:]}")
    return seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "hf-ssl-streaming-benchmark"))
    parser.add_argument("--extra_args", nargs=argparse.REMAINDER, default=[], help="passed on to hf-ssl pretrain")
    args = parser.parse_args()

    rows = []
    for count in args.sizes:
        folder = write_folder(Path(args.root), count, args.image_size)
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "hf_ssl.cli", "pretrain", "--method", args.method, "--preset",
                       args.preset, "--dataset", f"imagefolder:{folder}", "--image_size", str(args.image_size),
                       "--max_steps", str(args.steps), "--save_steps", "1000000", "--eval_protocols", "none",
                       "--output_dir", os.path.join(out, "run"), *args.extra_args]
            seconds, peak_mib = measure(command)
        rows.append((count, seconds, peak_mib))
    first = rows[0]
    print(f"{args.method} {args.preset}, {args.image_size} px, {args.steps} steps, {' '.join(args.extra_args)}")
    print("| images | wall time | peak memory (process tree) | time ratio | memory ratio |")
    print("|---:|---:|---:|---:|---:|")
    for count, seconds, peak_mib in rows:
        print(f"| {count:,} | {seconds:.1f} s | {peak_mib:,.0f} MiB | {seconds / first[1]:.2f}x | "
              f"{peak_mib / first[2]:.2f}x |")


if __name__ == "__main__":
    main()
