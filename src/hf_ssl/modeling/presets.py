"""Text that several methods' presets and limitations share, written once.

The joint-embedding methods (SimCLR, SimSiam, BYOL, VICReg, Barlow Twins, MoCo, SwAV, DINO) build their `tiny` and
`small` presets on the same ResNets and mostly train where their paper used LARS, so the same facts recur in
their preset descriptions and in the limitations their model cards print. Each method's `__init__.py` keeps its
own recipe (numbers, paper values, its own caveats) and takes the shared sentences from here.
"""

from __future__ import annotations

# `tiny` presets: the `resnet-test` backbone at 16 px, for the test suite.
TINY_RESNET = "ResNet 8-16 wide x2 stages"
FOR_TESTS = "a step in milliseconds, for tests"

# `small` presets: ResNet-18 on 32 px images (Fashion-MNIST, digits) on a CPU.
SMALL_RESNET = "ResNet-18 at 32 px (the stem downsamples 4x)"

# The ImageNet stem on 32 px images: a caveat of every `small` ResNet preset.
RESNET_STEM_AT_32_PX = "At 32 px the ResNet stem (7x7 stride-2 conv + max pool) keeps only 8x8 of the image"
CIFAR_STEM_NOT_DONE = "CIFAR variants replace it with a 3x3 stride-1 conv, not done here"

# Batch statistics: no synchronised BatchNorm across processes.
PER_PROCESS_BATCH_NORM = "BatchNorm normalises over each process's own 2 x per-device batch"


def tiny_preset(what: str) -> str:
    """The description of a `tiny` preset: the test ResNet, then ``what`` is specific to the method."""
    return f"{TINY_RESNET}, {what}: {FOR_TESTS}"


def trained_with_adamw_not_lars(lars_recipe: str, adamw_recipe: str = "") -> str:
    """The sentence of a method whose paper trains with LARS, which transformers does not provide: the presets use
    AdamW (``adamw_recipe``: what of it, if anything, comes from where) with a cosine schedule."""
    adamw = f"AdamW ({adamw_recipe})" if adamw_recipe else "AdamW"
    return (f"Trained with {adamw} and a cosine schedule, not the paper's LARS ({lars_recipe}), which transformers "
            "does not provide")


__all__ = [
    "CIFAR_STEM_NOT_DONE", "FOR_TESTS", "PER_PROCESS_BATCH_NORM", "RESNET_STEM_AT_32_PX", "SMALL_RESNET", "TINY_RESNET",
    "tiny_preset", "trained_with_adamw_not_lars",
]
