"""One folder per method; importing this package registers them all (see `hf_ssl.registry`)."""

from ..registry import register_method
from .mae import METHOD as MAE_METHOD
from .simclr import METHOD as SIMCLR_METHOD

for _method in (MAE_METHOD, SIMCLR_METHOD):
    register_method(_method)
