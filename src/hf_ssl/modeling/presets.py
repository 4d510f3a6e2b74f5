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

# The `small` presets not yet moved to the 15-minute recipes below: ResNet-18 on 32 px images on a CPU.
SMALL_RESNET = "ResNet-18 at 32 px (the stem downsamples 4x)"

# The 15-minute `small` recipes (issue 17): ResNet-18 at half width, 2.7x the training images/s of the full one at
# 32 px on a 2-core CPU, so the budget buys about 11 epochs of Fashion-MNIST instead of 4. The full width trained
# for 15 minutes stayed below its own random-init twin (SimCLR: 81.97% kNN against 83.43%); the half width beat
# its twin (83.09% against 80.30%), and the autoencoder on it reached 88.44%.
SMALL_RESNET_HALF = "ResNet-18 at half width (32-64-128-256) at 32 px"
# Each `small` recipe's epochs are what trains on Fashion-MNIST (60,000 images) in at most 15 minutes of this
# project's 2-core CPU (its measured steps/s beside it); a smaller dataset gets at least SMALL_MIN_STEPS optimizer
# steps instead (digits, 1,437 images in batches of 256: 6 steps an epoch).
SMALL_MIN_STEPS = 300


def fifteen_minute_schedule(epochs: float) -> dict[str, float]:
    """The schedule part of a `small` recipe's `training`: `epochs` of Fashion-MNIST, at least SMALL_MIN_STEPS."""
    return dict(num_train_epochs=epochs, min_steps=SMALL_MIN_STEPS)


def fifteen_minutes(epochs: float, steps_per_second: float | None = None) -> str:
    """The schedule's sentence of a `small` recipe's description; `steps_per_second`, measured on the 2-core CPU, gives
    how long digits' SMALL_MIN_STEPS take (about 2 minutes for the recipes measured before it was a parameter)."""
    digits = 2 if steps_per_second is None else max(1, round(SMALL_MIN_STEPS / steps_per_second / 60))
    return (f"{epochs:g} epochs (at least {SMALL_MIN_STEPS} steps): Fashion-MNIST in 15 minutes on a 2-core CPU, "
            f"digits in about {digits}")


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



# Semi-supervised methods (issue 16): one budget for every method of a comparison table, counted in optimizer steps
# (an "epoch" means a pass over the unlabelled images for most methods but over the labelled ones for `supervised`,
# so epochs would give the baseline a hundredth of the compute). FixMatch / USB train 2^20 steps of 64 labelled +
# 7 x 64 unlabelled images with SGD (nesterov momentum 0.9, lr 0.03, weight decay 5e-4, cosine decay); every hf-ssl
# preset uses AdamW with a cosine schedule instead.
SEMI_SUPERVISED_OPTIMIZER = ("AdamW (lr 1e-3, weight decay 0.01) with a cosine schedule, not the papers' SGD with "
                             "nesterov momentum (FixMatch / USB: lr 0.03, weight decay 5e-4) over 2^20 steps")
SEMI_SUPERVISED_BACKBONES = ("WideResNet-28-2, the backbone of the papers' CIFAR-10 tables, is not in transformers: the "
                             "presets use transformers' ResNets (`small`: ResNet-18, `base`: ResNet-50)")


def semi_supervised_presets(**config: object) -> dict[str, dict[str, object]]:
    """The `tiny`, `small` and `base` presets shared by the semi-supervised methods, as `Preset` keyword arguments
    (`{name: dict(description=..., config=..., training=...)}`); `config` adds method fields to every preset (the
    `supervised` baseline: `unlabeled_ratio=0`). `tiny` keeps 4 labels per class so that the tests exercise the
    unlabelled path; `small` and `base` take the labels from `--labels_per_class` / `--labeled_fraction` (default:
    every label of the training split)."""
    optim = dict(weight_decay=0.01, lr_scheduler_type="cosine", warmup_steps=0.0, learning_rate=1e-3)
    return {
        "tiny": dict(
            description=tiny_preset("16 px, 4 labels per class, 8 labelled images per step"),
            config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16), labels_per_class=4, **config),
            training=dict(optim, per_device_train_batch_size=8, num_train_epochs=1),
        ),
        "small": dict(
            description=f"{SMALL_RESNET}, 64 labelled images per step, 2,000 steps: Fashion-MNIST on a CPU",
            config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32), **config),
            training=dict(optim, per_device_train_batch_size=64, max_steps=2000),
        ),
        "base": dict(
            description="ResNet-50 at 32 px (the papers' CIFAR resolution), 64 labelled images per step, 2^20 steps "
                        "(FixMatch's schedule)",
            config=dict(backbone="resnet50", backbone_overrides=dict(image_size=32), **config),
            training=dict(optim, per_device_train_batch_size=64, max_steps=2**20),
        ),
    }


__all__ = [
    "CIFAR_STEM_NOT_DONE", "FOR_TESTS", "PER_PROCESS_BATCH_NORM", "RESNET_STEM_AT_32_PX", "SEMI_SUPERVISED_BACKBONES",
    "SEMI_SUPERVISED_OPTIMIZER", "SMALL_MIN_STEPS", "SMALL_RESNET", "SMALL_RESNET_HALF", "TINY_RESNET",
    "fifteen_minute_schedule", "fifteen_minutes", "semi_supervised_presets", "tiny_preset",
    "trained_with_adamw_not_lars",
]
