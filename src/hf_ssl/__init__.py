"""hf-ssl: self-supervised learning methods as first-class Hugging Face models.

Importing `hf_ssl` registers every method's config and model with the transformers Auto classes.
"""

__version__ = "0.1.0"

from . import modeling  # noqa: F401  (registers the methods)
from .errors import HfSslError
from .modeling.mae import MAEConfig, MAEForPreTraining
from .modeling.simclr import SimCLRConfig, SimCLRForPreTraining
from .registry import METHODS, Method, Preset, get_method

__all__ = ["HfSslError", "MAEConfig", "MAEForPreTraining", "METHODS", "Method", "Preset", "SimCLRConfig", "SimCLRForPreTraining", "get_method", "__version__"]
