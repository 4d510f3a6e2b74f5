"""Configuration of SwAV.

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin. "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments", NeurIPS 2020 (arXiv:2006.09882). The defaults are the paper's (Sec. 4 and Appendix A,
and the reference `main_swav.py` / `swav_*_pretrain.sh`): a ResNet-50, a projection MLP 2048 -> 2048 -> 128
with BatchNorm, 3000 prototypes, Sinkhorn-Knopp with epsilon 0.05 and 3 iterations on the two 224 px crops,
swapped prediction with temperature 0.1 over all crops, multi-crop 2 x 224 (scale 0.14-1) + 6 x 96 (scale
0.05-0.14), prototypes frozen for the first 313 iterations (one epoch at batch 4096), no queue.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import SubConfigSpec

from ..joint_embedding import MultiCropConfig


@strict
class SwAVConfig(MultiCropConfig):
    r"""
    backbone_config (`PretrainedConfig`): the encoder (any transformers vision backbone; the paper's is a
        ResNet-50, `ResNetConfig`). Its `image_size` is the size of the two global (high-resolution) crops.
        Exported as the native backbone class.
    projection_hidden_dim (`int`, defaults to 2048): hidden width of the projection MLP (Linear -> BN -> ReLU ->
        Linear, the reference `projection_head`).
    projection_dim (`int`, defaults to 128): width of the L2-normalised features z that meet the prototypes.
    num_prototypes (`int`, defaults to 3000): K, the number of trainable prototype vectors c_k (Sec. 4.1).
    temperature (`float`, defaults to 0.1): tau of the prediction softmax p = softmax(z^T c / tau) (Eq. 2).
    sinkhorn_epsilon (`float`, defaults to 0.05): entropy regularisation of the equipartitioned codes (Eq. 3);
        the codes start from exp(z^T c / epsilon).
    sinkhorn_iterations (`int`, defaults to 3): Sinkhorn-Knopp iterations (Sec. 3.1).
    freeze_prototypes_steps (`int`, defaults to 313): the prototypes get no update during this many optimizer
        steps from the start (the reference `freeze_prototypes_niters`: 313 = one epoch at batch 4096, 5005 =
        one epoch at batch 256; Appendix A notes it helps the first epoch).
    queue_length (`int`, defaults to 0): rows of earlier features kept per process and per global crop to
        compute the codes of small batches (Sec. 4.3, the reference `queue_length / world_size`: 3840 over 4
        processes = 960 at batch 256); 0 = no queue. The queue is used only once it is full.
    queue_start (`float`, defaults to 0.15): fraction of training after which the queue starts filling (the
        reference's `epoch_queue_starts` 15 of its default 100 epochs). Ignored without a queue.
    num_local_crops (`int`, defaults to 6): low-resolution crops per image besides the 2 global ones (multi-crop,
        Sec. 3.2). They predict the codes of the global crops but get no codes of their own. 0: two crops only.
    local_crop_size (`int`, defaults to 96): side of the local crops in pixels (smaller than the global size).
    global_crop_min_scale, global_crop_max_scale (`float`, default to 0.14, 1.0): area range of the global
        random resized crops.
    local_crop_min_scale, local_crop_max_scale (`float`, default to 0.05, 0.14): area range of the local crops.
    gather_distributed (`bool`, defaults to `True`): Sinkhorn-Knopp equipartitions the codes over the batch of
        all processes (the reference `distributed_sinkhorn`).
    initializer_range (`float`, defaults to 0.01): std of the normal init of the projection MLP's linear layers
        (the prototypes are drawn uniformly on the unit sphere).
    """

    model_type = "hf_ssl_swav"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="resnet")}

    projection_hidden_dim: int = 2048
    projection_dim: int = 128
    num_prototypes: int = 3000
    temperature: float = 0.1
    sinkhorn_epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    freeze_prototypes_steps: int = 313
    queue_length: int = 0
    queue_start: float = 0.15

    def validate_swav(self):
        """Checks run by `@strict` on creation: each names the bad value and the valid range."""
        for name in ("projection_hidden_dim", "projection_dim", "num_prototypes", "sinkhorn_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("temperature", "sinkhorn_epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("freeze_prototypes_steps", "queue_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.queue_start <= 1.0:
            raise ValueError(f"queue_start must be in [0, 1] (a fraction of training), got {self.queue_start}")


__all__ = ["SwAVConfig"]
