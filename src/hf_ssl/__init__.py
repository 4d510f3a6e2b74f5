"""hf-ssl: self-supervised learning methods as first-class Hugging Face models.

Importing `hf_ssl` registers every method's config and model with the transformers Auto classes.
"""

__version__ = "0.1.0"

from . import modeling  # noqa: F401  (registers the methods)
from .errors import HfSslError
from .modeling.autoencoder import AutoencoderConfig, AutoencoderForPreTraining
from .modeling.barlow_twins import BarlowTwinsConfig, BarlowTwinsForPreTraining
from .modeling.beit import BEiTConfig, BEiTForPreTraining
from .modeling.byol import BYOLConfig, BYOLForPreTraining
from .modeling.clip import CLIPForPreTraining, CLIPPretrainingConfig
from .modeling.colorization import ColorizationConfig, ColorizationForPreTraining
from .modeling.context_encoder import ContextEncoderConfig, ContextEncoderForPreTraining
from .modeling.denoising_autoencoder import DenoisingAutoencoderConfig, DenoisingAutoencoderForPreTraining
from .modeling.dino import DINOConfig, DINOForPreTraining
from .modeling.entropy_minimization import EntropyMinimizationConfig, EntropyMinimizationModel
from .modeling.jigsaw import JigsawConfig, JigsawForPreTraining
from .modeling.mae import MAEConfig, MAEForPreTraining
from .modeling.moco import MoCoConfig, MoCoForPreTraining
from .modeling.pseudo_label import PseudoLabelConfig, PseudoLabelModel
from .modeling.relative_patch_location import RelativePatchLocationConfig, RelativePatchLocationForPreTraining
from .modeling.rotation import RotationConfig, RotationForPreTraining
from .modeling.simclr import SimCLRConfig, SimCLRForPreTraining
from .modeling.simmim import SimMIMConfig, SimMIMForPreTraining
from .modeling.simsiam import SimSiamConfig, SimSiamForPreTraining
from .modeling.supervised import SupervisedConfig, SupervisedModel
from .modeling.swav import SwAVConfig, SwAVForPreTraining
from .modeling.vicreg import VICRegConfig, VICRegForPreTraining
from .modeling.visual_tokenizer import VisualVQConfig, VisualVQModel
from .registry import METHODS, Method, Preset, get_method

__all__ = [
    "BYOLConfig", "BYOLForPreTraining", "CLIPForPreTraining", "CLIPPretrainingConfig", "BarlowTwinsConfig", "BarlowTwinsForPreTraining", "DINOConfig",
    "DINOForPreTraining", "HfSslError", "MAEConfig", "MAEForPreTraining", "METHODS", "Method", "MoCoConfig",
    "MoCoForPreTraining", "Preset", "SimCLRConfig", "SimCLRForPreTraining", "SimSiamConfig", "SimSiamForPreTraining",
    "SwAVConfig", "SwAVForPreTraining", "VICRegConfig", "VICRegForPreTraining", "get_method", "__version__",
    "BEiTConfig", "BEiTForPreTraining", "SimMIMConfig", "SimMIMForPreTraining", "VisualVQConfig",
    "VisualVQModel", "RotationConfig", "RotationForPreTraining",
    "RelativePatchLocationConfig", "RelativePatchLocationForPreTraining", "JigsawConfig", "JigsawForPreTraining",
    "AutoencoderConfig", "AutoencoderForPreTraining", "DenoisingAutoencoderConfig",
    "DenoisingAutoencoderForPreTraining", "ContextEncoderConfig", "ContextEncoderForPreTraining",
    "ColorizationConfig", "ColorizationForPreTraining",
    "SupervisedConfig", "SupervisedModel", "PseudoLabelConfig", "PseudoLabelModel", "EntropyMinimizationConfig",
    "EntropyMinimizationModel",
]
