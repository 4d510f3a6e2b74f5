"""Configuration of rotation prediction (RotNet).

Gidaris, Singh, Komodakis. "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018
(arXiv:1803.07728). The defaults are the paper's: the four rotations by 0, 90, 180 and 270 degrees (Sec. 2.2 and
Table 2: four beat two or eight), every image in all four rotations in the same mini-batch (Sec. 2.3), a cross-entropy
over the four classes; random crop and horizontal flip as the only other augmentation.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..pretext_task import PretextTaskConfig


@strict
class RotationConfig(PretextTaskConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder F (any transformers vision backbone; the paper's are a
        Network-In-Network on CIFAR-10 and AlexNet on ImageNet). Its `image_size` is the training resolution.
        Exported as the native backbone class.
    crop_min_scale (`float`, defaults to 0.766): smallest area of the random resized crop. The paper's ImageNet
        pipeline takes a random 224 px crop of an image resized to 256 px, an area of (224 / 256)^2 = 0.766.
    horizontal_flip (`bool`, defaults to `True`): random horizontal flips (the paper's, before rotating).
    initializer_range (`float`, defaults to 0.01): std of the normal init of the 4-way linear classifier.

    The classifier is one linear layer on the pooled features (the paper's classifier is the top of its network,
    which here is the backbone itself: the head only reads the 4 logits off its features).
    """

    model_type = "hf_ssl_rotation"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    crop_min_scale: float = (224 / 256) ** 2
    horizontal_flip: bool = True


__all__ = ["RotationConfig"]
