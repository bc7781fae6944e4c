"""Models for fixed-point work: resolving what the user typed (spec), the sources a model can come from
(sources, checkpoint), loading it (loading), and what is known once it is loaded (loaded).

Callers import from here.
"""

from .aliases import load_aliases
from .memory import MemoryEstimate, MemoryRefusal
from .loaded import LoadedModel
from .loading import DTYPES, LOW_PRECISION, load_model, pick_device, pick_dtype
from .sources import SOURCES, Attempt, Found, LoadRequest, Source, cannot_load, locate
from .spec import ModelSpec, resolve_model

__all__ = ["DTYPES", "LOW_PRECISION", "SOURCES", "Attempt", "Found", "LoadRequest", "LoadedModel", "MemoryEstimate",
           "MemoryRefusal", "ModelSpec",
           "Source", "cannot_load", "load_aliases", "load_model", "locate", "pick_device", "pick_dtype",
           "resolve_model"]
