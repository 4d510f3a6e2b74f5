"""Jigsaw puzzles, the context-free network (Noroozi & Favaro, ECCV 2016)."""

from ...data.pretext_tasks import jigsaw_collator
from ...registry import Method, Preset
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_jigsaw import JigsawConfig
from .modeling_jigsaw import JigsawForPreTraining, JigsawOutput

# The paper trains AlexNet's tiles with SGD for 350K iterations; every preset here uses AdamW with a cosine schedule,
# as the other methods. The tile geometry scales with the images: `tiny` (16 px) has 4 px tiles 1 px apart without
# jitter, `small` (32 px, Fashion-MNIST) 8 px tiles 3 px apart with +-1 px jitter, `base` the paper's 64 px tiles in
# 75 px cells of a 225 px crop, with its main setting of 1,000 permutations.
_OPTIM = dict(weight_decay=5e-4, lr_scheduler_type="cosine")

PRESETS = {
    "tiny": Preset(
        "ResNet 8-16 wide x2 stages, 16 px images, 4 px tiles 1 px apart, 100 permutations, small heads: for tests",
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16), tile_size=4, tile_gap=1,
                    max_jitter=0, tile_embedding_dim=16, classifier_hidden_dim=32),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=32, num_train_epochs=1,
                      warmup_steps=0.0),
    ),
    "small": Preset(
        "ResNet-18, 32 px images, 8 px tiles 3 px apart (+-1 px jitter), 100 permutations, fc6 128, fc7 1024"
        f", {fifteen_minutes(3.3, 1.913)}",
        config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32), tile_size=8, tile_gap=3,
                    max_jitter=1, tile_embedding_dim=128, classifier_hidden_dim=1024),
        # 3.3 epochs = 1,548 steps: 13.5 minutes at the 1.913 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=128, **fifteen_minute_schedule(3.3),
                      warmup_steps=0.05),
        # model step fp32 -> bf16 here: 416 -> 506 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=False,
    ),
    "base": Preset(
        "ResNet-50, the paper's 64 px tiles in 75 px cells of 225 px crops, 1,000 permutations, fc6 512, fc7 4096",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=225), num_permutations=1000),
        training=dict(_OPTIM, learning_rate=1e-3, per_device_train_batch_size=256, num_train_epochs=30,
                      warmup_steps=0.05),
    ),
}

METHOD = Method(
    name="jigsaw",
    summary=("Jigsaw puzzles: which permutation of a set (maximal Hamming distance) shuffled the 9 tiles of a 3x3 "
             "grid with gaps and jitter"),
    paper=("Noroozi, Favaro, Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles, ECCV 2016 "
           "(arXiv:1603.09246)"),
    config_class=JigsawConfig,
    model_class=JigsawForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=jigsaw_collator,
    tags=("pretext-task", "transformation-prediction"),
    display_name="Jigsaw",
    limitations=(
        "Trained with AdamW and a cosine schedule, not the paper's SGD. The encoder learns on tiles (under a third "
        "of the image side) and is evaluated on whole images. Shortcut guards implemented: gaps, jitter, per-tile "
        "normalisation, random grayscale; the paper's spatial jitter of the colour channels is not. The permutation "
        "set is greedy in the average Hamming distance (the paper's Algorithm 1), so its minimum pairwise distance "
        "is smaller than the average."
    ),
)

__all__ = ["JigsawConfig", "JigsawForPreTraining", "JigsawOutput", "METHOD"]
