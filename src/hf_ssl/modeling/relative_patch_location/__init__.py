"""Relative patch location, context prediction (Doersch, Gupta, Efros, ICCV 2015)."""

from ...data.pretext_tasks import relative_patch_location_collator
from ...registry import Method, Preset
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_relative_patch_location import RelativePatchLocationConfig
from .modeling_relative_patch_location import RelativePatchLocationForPreTraining, RelativePatchLocationOutput

# The paper trains with SGD and batch normalisation for weeks on ImageNet; every preset here uses AdamW with a cosine
# schedule, as the other methods. The patch geometry scales with the images: `tiny` (16 px) has 4 px patches 1 px
# apart without jitter, `small` (32 px, Fashion-MNIST) 8 px patches 3 px apart with +-1 px jitter, `base` the
# paper's 96 px patches 48 px apart with +-7 px jitter in 400 px images.
_OPTIM = dict(weight_decay=5e-4, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ResNet 8-16 wide x2 stages, 16 px images, 4 px patches 1 px apart, classifier 32 wide: for tests",
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16), tile_size=4, tile_gap=1,
                    max_jitter=0, classifier_hidden_dim=32),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ResNet-18, 32 px images, 8 px patches 3 px apart (+-1 px jitter), classifier 512 wide: a CPU run"
        f", {fifteen_minutes(12, 3.732)}",
        config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32), tile_size=8, tile_gap=3,
                    max_jitter=1, classifier_hidden_dim=512),
        # 12 epochs = 2,820 steps: 12.6 minutes at the 3.732 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, **fifteen_minute_schedule(12),
                      warmup_steps=0.05),
        # model step fp32 -> bf16 here: 232 -> 418 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=False,
    ),
    "base": Preset(
        "ResNet-50, the paper's 96 px patches 48 px apart (+-7 px jitter) in 400 px images, classifier 4096 wide",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=400)),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=128, num_train_epochs=30,
                      warmup_steps=0.05),
    ),
}

METHOD = Method(
    name="relative_patch_location",
    summary=("Context prediction: where does a patch lie relative to a centre patch (8 positions, with gaps and "
             "jitter, colour dropping)"),
    paper=("Doersch, Gupta, Efros, Unsupervised Visual Representation Learning by Context Prediction, ICCV 2015 "
           "(arXiv:1505.05192)"),
    config_class=RelativePatchLocationConfig,
    model_class=RelativePatchLocationForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=relative_patch_location_collator,
    tags=("pretext-task", "transformation-prediction"),
    display_name="Context prediction",
    limitations=(
        "Trained with AdamW and a cosine schedule, not the paper's SGD. The encoder learns on patches (a third of "
        "the image side or less) and is evaluated on whole images. Of the paper's shortcut guards, the gap, the "
        "jitter and colour dropping are implemented; the random down- and up-sampling of patches (against "
        "chromatic aberration and blur cues) is not. On grayscale data (digits, Fashion-MNIST as 3 equal channels) "
        "colour dropping keeps one copy of the same gray channel. The paper's classifier sits on fc6 features of "
        "each patch; here it reads the backbone's pooled features."
    ),
)

__all__ = ["RelativePatchLocationConfig", "RelativePatchLocationForPreTraining", "RelativePatchLocationOutput",
           "METHOD"]
