"""Models for fixed-point work: resolving what the user typed, loading it, and what is known once loaded.

Callers import from here; the parts live in the package's modules.
"""

from ..aliases import load_aliases
from .loading import DTYPES, LOW_PRECISION, LoadedModel, ModelSpec, load_model, pick_device, pick_dtype, resolve_model

__all__ = ["DTYPES", "LOW_PRECISION", "LoadedModel", "ModelSpec", "load_aliases", "load_model", "pick_device",
           "pick_dtype", "resolve_model"]
