"""FixMatch (Sohn et al., NeurIPS 2020) around a native transformers image classifier.

Each step sees B labelled and mu * B unlabelled images, weakly augmented by the collator (flip and translation);
the strong view of each unlabelled image is made here, on the training device, from its weak view:

    alpha(u_b)  = the weak view (collator);  A(u_b) = normalise(RandAugment + Cutout(de-normalise(alpha(u_b))))
    q_b         = softmax f(alpha(u_b)),  y_b = argmax q_b         a constant (no gradient)
    m_b         = 1(max q_b >= tau)
    l_s         = 1/B sum_b CE(f(x_b), y_b)                                                    (Eq. 2)
    l_u         = 1/(mu B) sum_b m_b CE(f(A(u_b)), y_b)    normalised by *every* unlabelled image (Eq. 4;
                                                           `losses.pseudo_label.pseudo_label_loss`)
    loss        = l_s + lambda_u l_u
    after the optimizer step:   theta_ema <- d theta_ema + (1 - d) theta,  d = min(0.999, 1 - 1 / (step + 1))
                                (evaluated and published; the cap is a warm start for short runs, see `ema_decay`)

The labelled, weak and strong batches go through the classifier in one call, so BatchNorm normalises over all of them
(the reference's `interleave` and USB's `torch.cat` do the same). The strong augmentation runs only in training mode:
in eval mode the strong view is the weak one. Its random draws come from torch's default generator, so a seeded
forward is reproducible.

The EMA copy is what OUT publishes (`exported_model`), as the paper evaluates it. The weak view's pseudo-labels and
masks are recorded for the monitor (accuracy and coverage against the hidden labels).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from ...losses.pseudo_label import pseudo_label_loss
from ...nn.momentum import copy_frozen, ema_update
from ...nn.normalization import PixelNormalization
from ...nn.pseudo_labeling import select_threshold
from ...nn.rand_augment import RandAugment
from ..semi_supervised import SemiSupervisedModel, SemiSupervisedOutput
from .configuration_fixmatch import FixMatchConfig


class FixMatchModel(SemiSupervisedModel):
    config_class = FixMatchConfig
    base_model_prefix = "fixmatch"

    def __init__(self, config: FixMatchConfig):
        super().__init__(config)
        self.strong_augment = RandAugment(num_ops=config.strong_num_ops, cutout_max=config.strong_cutout)
        # the EMA of the weights, equal to them at the start and frozen: only `ema_update` moves it
        self.ema = copy_frozen(self.classifier)
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # transformers loads every floating-point weight as a new Parameter with requires_grad=True: freeze the EMA
        # again, or Trainer would hand it to the optimizer (as JointEmbeddingModel does for its EMA copies).
        loaded = super().from_pretrained(*args, **kwargs)
        (loaded[0] if isinstance(loaded, tuple) else loaded).ema.requires_grad_(False)
        return loaded

    def exported_model(self) -> PreTrainedModel:
        """The EMA of the weights, a native `*ForImageClassification`: the model FixMatch evaluates (App. B.1)."""
        return self.ema

    def load_encoder_weights(self, checkpoint: str) -> None:
        """`--backbone CHECKPOINT` into the trained classifier, then the EMA made equal to it."""
        super().load_encoder_weights(checkpoint)
        ema_update(self.ema, self.classifier, momentum=0.0)

    def ema_decay(self, step: int) -> float:
        """The EMA's decay after optimizer step `step` (1 after the first): `config.ema_decay`, capped by
        1 - 1 / (step + 1) so that the EMA is the plain average of the weights seen so far until the exponential
        average holds more steps (Mean Teacher's reference does the same). Not in FixMatch, whose 2^20 steps forget
        the random initialisation anyway; at a CPU budget of 2,000 steps a fixed 0.999 would keep 0.999^2000 = 14%
        of it in the published model."""
        return min(self.config.ema_decay, 1.0 - 1.0 / (step + 1))

    @torch.no_grad()
    def on_optimizer_step(self, step: int, progress: float) -> None:
        """theta_ema <- decay theta_ema + (1 - decay) theta; BatchNorm statistics copied from the trained classifier
        (the EMA never runs during training, so it has none of its own)."""
        ema_update(self.ema, self.classifier, self.ema_decay(step))

    @property
    def normalization(self) -> PixelNormalization:
        """The collator's normalisation (made on use: `from_pretrained` builds the model on the meta device, where
        tensors made in `__init__` would have no data)."""
        return PixelNormalization(self.config.image_mean, self.config.image_std)

    def strong_view(self, weak_pixels: torch.Tensor) -> torch.Tensor:
        """A(u): RandAugment and Cutout on the weak view in [0, 1] pixel units, normalised again, on its device."""
        normalization = self.normalization
        pixels = normalization.invert(weak_pixels.float()).clamp_(0.0, 1.0)
        return normalization(self.strong_augment(pixels)).to(weak_pixels.dtype)

    def forward(self, labeled_pixels: torch.Tensor, labels: torch.Tensor, unlabeled_pixels: torch.Tensor | None = None,
                unlabeled_index: torch.Tensor | None = None, **kwargs) -> SemiSupervisedOutput:
        if unlabeled_pixels is None:  # every example labelled, or mu = 0: the labels alone
            return self.labels_only(labeled_pixels, labels)

        weak = unlabeled_pixels
        strong = self.strong_view(weak) if self.training else weak
        logits, weak_logits, strong_logits = self.joint_logits(labeled_pixels, weak, strong)
        supervised = self.supervised_loss(logits, labels)
        with torch.no_grad():  # q_b, its argmax and the confidence mask are constants
            pseudo_labels, mask = select_threshold(weak_logits.detach().float().softmax(dim=-1), self.config.threshold)
        unlabeled = pseudo_label_loss(strong_logits, pseudo_labels, mask)
        loss = supervised + self.config.unlabeled_weight * unlabeled

        self.record_loss_terms(supervised, unlabeled, mask.mean())
        self.record_pseudo_labels(unlabeled_index, pseudo_labels, mask)
        return SemiSupervisedOutput(loss=loss, logits=logits)


__all__ = ["FixMatchModel"]
