"""Context encoders (Pathak, Krähenbühl, Donahue, Darrell, Efros, CVPR 2016)."""

from ...data.collators import flip_collator
from ...registry import Method, Preset
from ..autoencoder.modeling_autoencoder import ReconstructionOutput
from ..presets import fifteen_minute_schedule, fifteen_minutes
from .configuration_context_encoder import ContextEncoderConfig
from .modeling_context_encoder import ContextEncoderForPreTraining

# `tiny` is for tests and `small` for 32 px images on a CPU: the reconstruction loss only (adversarial_weight 0: the
# paper's L2-only context encoder), the overlap scaled with the image (4 px at 128 -> 1 px at 16-32). `base` is the
# paper's 128 px input with its central 64 px square, 4000-unit bottleneck and 0.999 / 0.001 joint loss, trained with
# the DCGAN optimiser of the reference code (Adam, lr 2e-4, beta1 0.5, batch 64); the paper's AlexNet encoder is
# replaced by a ResNet-50 (transformers has no AlexNet).
PRESETS = {
    "tiny": Preset(
        "ResNet 8-16 wide x2 stages, 16 px, central 8 px square (6 px hidden, 1 px overlap), bottleneck 16, "
        "decoder 16 wide, no adversarial term: a step in milliseconds",
        config=dict(backbone="resnet-test", backbone_overrides=dict(image_size=16), bottleneck_dim=16,
                    decoder_width=16, overlap=1, adversarial_weight=0.0),
        training=dict(weight_decay=0.0, lr_scheduler_type="cosine", learning_rate=1e-3,
                      per_device_train_batch_size=32, num_train_epochs=1, warmup_steps=0.0),
    ),
    "small": Preset(
        "ResNet-18 at 32 px, central 16 px square (1 px overlap), bottleneck 512, decoder 128 wide, reconstruction "
        "loss only: small images on a CPU"
        f", {fifteen_minutes(5, 1.489)}",
        config=dict(backbone="resnet18", backbone_overrides=dict(image_size=32), bottleneck_dim=512,
                    decoder_width=128, overlap=1, adversarial_weight=0.0),
        # 5 epochs = 1,175 steps: 13.2 minutes at the 1.489 steps/s measured here (60 steps alone,
        # on a day SimCLR small ran 2.4 steps/s, 3.0 on the fastest)
        training=dict(weight_decay=0.0, lr_scheduler_type="cosine", learning_rate=1e-3,
                      per_device_train_batch_size=256, **fifteen_minute_schedule(5), warmup_steps=0.05),
        # model step fp32 -> bf16 here: 645 -> 385 ms (`hf-ssl benchmark --steps 6 --[no-]bf16`)
        cpu_bf16=True,
    ),
    "base": Preset(
        "the paper's 128 px images, central 64 px square with a 4 px overlap (10x weight), 4000-unit bottleneck, "
        "0.999 L2 + 0.001 adversarial; ResNet-50 encoder; Adam lr 2e-4, beta1 0.5, batch 64",
        config=dict(backbone="resnet50", backbone_overrides=dict(image_size=128), bottleneck_dim=4000,
                    decoder_width=512, overlap=4, adversarial_weight=0.001),
        training=dict(weight_decay=0.0, adam_beta1=0.5, adam_beta2=0.999, lr_scheduler_type="constant",
                      learning_rate=2e-4, per_device_train_batch_size=64, num_train_epochs=100, warmup_steps=0.0),
    ),
}

METHOD = Method(
    name="context_encoder",
    summary="Context encoder: fill a region of the image with the mean and inpaint it from the rest (weighted L2, "
            "optionally adversarial)",
    paper=("Pathak, Krähenbühl, Donahue, Darrell, Efros, Context Encoders: Feature Learning by Inpainting, "
           "CVPR 2016 (arXiv:1604.07379)"),
    config_class=ContextEncoderConfig,
    model_class=ContextEncoderForPreTraining,
    modality="image",
    presets=PRESETS,
    default_preset="small",
    make_collator=flip_collator,
    tags=("reconstruction", "inpainting"),
    display_name="Context encoder",
    limitations=(
        "The paper's encoder is AlexNet's pool5 map joined to the decoder by a channel-wise fully connected layer; "
        "here the bottleneck is a linear layer on the backbone's globally pooled features, so the decoder rebuilds "
        "the region from one vector. With adversarial_weight > 0 the discriminator is trained in the same forward "
        "pass and optimizer step as the encoder (simultaneous, not the reference code's alternating updates), and "
        "the logged loss includes the discriminator's term. `region=random` is the paper's random-block masking "
        "(blocks of a quarter of the image side); its random segmentation-shape masks are not implemented. The "
        "filled value is the mean of the input normalisation (ImageNet's unless image_mean says otherwise), not "
        "the training set's own mean."
    ),
)

__all__ = ["ContextEncoderConfig", "ContextEncoderForPreTraining", "ReconstructionOutput", "METHOD"]
