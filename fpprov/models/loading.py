"""Loading a model for fixed-point work: dtype and device checks, then the first source that has it.

Every loaded model is in eval mode with an explicit dtype; callers run it under ``torch.no_grad()``.
"""

from __future__ import annotations

import warnings

import torch

from ..devices import resolve_device
from ..errors import FpprovError, LowPrecisionWarning
from .checkpoint import quiet_transformers
from .loaded import LoadedModel
from .sources import LoadRequest, locate
from .spec import ModelSpec, resolve_model

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
LOW_PRECISION = {"bfloat16", "float16"}


def pick_device(device: str) -> torch.device:
    return resolve_device(device)


def pick_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise FpprovError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if dtype in LOW_PRECISION:
        warnings.warn(f"{dtype} loses the precision fixed points need (the seed saw it fail); float32 is the reference",
                      LowPrecisionWarning, stacklevel=2)
    return DTYPES[dtype]


def load_model(spec: str | ModelSpec, dtype: str = "float32", device: str = "auto") -> LoadedModel:
    """Resolve and load a model in eval mode with an explicit dtype on the chosen device.

    ``spec`` is left as it was; the LoadedModel's spec says which source had the model."""
    if isinstance(spec, str):
        spec = resolve_model(spec)
    torch_dtype = pick_dtype(dtype)
    dev = pick_device(device)
    quiet_transformers()
    found = locate(spec, LoadRequest(torch_dtype=torch_dtype, dtype=dtype))
    model = found.model
    model.to(dev)
    model.eval()
    model.requires_grad_(False)
    return LoadedModel.of(found.spec, model, found.tokenizer, torch_dtype, dev)
