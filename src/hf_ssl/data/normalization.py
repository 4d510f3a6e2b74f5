"""Pixel normalisation now lives in :mod:`hf_ssl.nn.normalization` (model code uses it too); re-exported here so
that imports of ``hf_ssl.data.normalization`` keep working."""

from ..nn.normalization import PixelNormalization, rescale_pixels

__all__ = ["PixelNormalization", "rescale_pixels"]
