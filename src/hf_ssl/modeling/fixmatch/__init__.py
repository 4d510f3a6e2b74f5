"""FixMatch (Sohn et al., NeurIPS 2020)."""

from __future__ import annotations

import math

from ...data.collators import semi_supervised_collator
from ...registry import Method, Preset
from ..presets import SEMI_SUPERVISED_BACKBONES, SEMI_SUPERVISED_OPTIMIZER, semi_supervised_presets
from .configuration_fixmatch import FixMatchConfig
from .modeling_fixmatch import FixMatchModel

# The paper's optimiser (Sec. 4, App. B.1, Table 4): SGD with nesterov momentum 0.9, lr 0.03, weight decay 5e-4, and
# the learning rate lr * cos(7 pi k / (16 K)) at step k of K. Trainer has `optim="sgd"` with `optim_args` for the
# momentum, but no such schedule: `cosine_with_min_lr` with a floor of cos(7 pi / 16) = 0.195 ends where FixMatch's
# does, along a half cosine instead (at mid-training 0.60 lr where FixMatch has 0.77 lr).
PAPER_SGD = dict(optim="sgd", optim_args="momentum=0.9,nesterov=True", learning_rate=0.03, weight_decay=5e-4,
                 lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": math.cos(7 * math.pi / 16)},
                 warmup_steps=0.0)


def _presets() -> dict[str, Preset]:
    presets = semi_supervised_presets()
    # small: B = 16 labelled + 7 x 16 = 112 unlabelled images (each a weak and a strong view), 240 images through
    # ResNet-18 at 32 px a step: about a second on a laptop-class CPU (64 labelled would be four times that)
    presets["small"]["training"] = {**presets["small"]["training"], "per_device_train_batch_size": 16}
    presets["small"]["description"] = presets["small"]["description"].replace(
        "64 labelled images per step", "16 labelled + 112 unlabelled images per step (weak and strong views)")
    # base: the paper's batch (64 + 448), schedule length and optimiser, on ResNet-50 instead of WideResNet-28-2
    presets["base"]["training"] = {**presets["base"]["training"], **PAPER_SGD}
    presets["base"]["description"] += ", the paper's SGD (nesterov 0.9, lr 0.03, weight decay 5e-4, cosine decay)"
    return {name: Preset(**preset) for name, preset in presets.items()}


PRESETS = _presets()

METHOD = Method(
    name="fixmatch",
    summary="FixMatch: the confident argmax (>= 0.95) of a weakly augmented unlabelled image is the target of its "
            "strongly augmented view (RandAugment + Cutout on the training device); an EMA of the weights is "
            "published",
    paper=("Sohn, Berthelot, Li, Zhang, Carlini, Cubuk, Kurakin, Zhang, Raffel, FixMatch: Simplifying "
           "Semi-Supervised Learning with Consistency and Confidence, NeurIPS 2020"),
    config_class=FixMatchConfig,
    model_class=FixMatchModel,
    modality="image-classification",
    presets=PRESETS,
    default_preset="small",
    make_collator=semi_supervised_collator,  # weak views of B labelled + mu B unlabelled images; strong in forward
    auto_classes=("AutoModel",),
    tags=("semi-supervised", "consistency-regularization", "pseudo-labeling", "fixmatch", "randaugment"),
    display_name="FixMatch",
    limitations=(
        "The published classifier is the EMA of the weights (decay 0.999), as the paper evaluates it; the trained "
        "weights are in `ssl/`. Its decay is capped by 1 - 1 / (step + 1) (a plain average of the weights seen so far "
        "during the first 1,000 steps, as Mean Teacher's reference does; not in FixMatch) so that a short run does "
        "not publish mostly its random initialisation; even so the EMA lags the trained weights by about 1,000 "
        "steps. The strong view is RandAugment (2 ops at random magnitudes) and Cutout applied on top of the weak "
        "view, so it shares the weak view's flip and translation (the reference draws them independently); "
        "RandAugment runs batched on the training device on float pixels, not on 8-bit PIL images. "
        f"Presets tiny and small train with {SEMI_SUPERVISED_OPTIMIZER}, the recipe of every semi-supervised "
        "method here, so a comparison table differs in the method only; base uses the paper's SGD (nesterov "
        "momentum 0.9, lr 0.03, weight decay 5e-4) with a half-cosine from lr to 0.195 lr in place of the paper's "
        f"lr cos(7 pi k / 16 K), which Trainer does not provide. {SEMI_SUPERVISED_BACKBONES}."
    ),
)

__all__ = ["METHOD", "FixMatchConfig", "FixMatchModel"]
