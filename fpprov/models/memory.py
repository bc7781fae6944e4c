"""Whether a model fits before its weights are read: the weights at the load dtype plus the scan's working set,
against the free memory of the device (or of the devices a device map spreads it over).

The parameter count comes from the config alone (the model built on the meta device), so a model that cannot
fit is refused in one line, with what would fit it, before gigabytes are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from .devices import map_devices
from ..errors import FpprovError

GB = 1e9
# Scan dtypes from widest to narrowest: the smaller ones a refusal may suggest.
_NARROWER = ("float64", "float32", "bfloat16")
_ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
_HEAD_ROW_BLOCK = 1024     # LMHead pools screen rows into GEMMs of up to this many rows


def _size(n: float, line: bool = False) -> str:
    """Bytes as GB (whole past 10 GB in a refusal, one decimal otherwise), as MB below 0.1 GB."""
    if n < 0.1 * GB:
        return f"{n / 1e6:.1f} MB"
    return f"{n / GB:.0f} GB" if n >= 10 * GB and not line else f"{n / GB:.1f} GB"


class MemoryRefusal(FpprovError):
    """The model does not fit the device: a reason no other source of the same model can fix."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a scan needs and the bytes free where it would run.

    ``working_elems`` scale with the scan dtype (activations, a head chunk of logits); ``recheck_bytes`` are
    float64 whatever the scan dtype (one decoder layer and one head chunk cast for the exact re-check)."""

    model: str
    dtype: str                     # float32 | bfloat16 | ...
    params: int                    # parameters, a tied head counted once
    working_elems: int             # scan-dtype elements of the working set
    recheck_bytes: int             # float64 bytes of the re-check
    free_bytes: int                # free memory summed over the devices the model would sit on
    where: str                     # "cuda:0", "cpu", "2 GPUs (cuda:0, cuda:1)"
    device_free: int               # free bytes of one device (the smallest), for "over N GPUs"
    gpu: bool                      # the devices are CUDA GPUs (a device map over several could help)

    @property
    def weights_bytes(self) -> int:
        return self.params * _ITEMSIZE[self.dtype]

    @property
    def working_bytes(self) -> int:
        return self.working_elems * _ITEMSIZE[self.dtype] + self.recheck_bytes

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.working_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.free_bytes

    def total_at(self, dtype: str) -> int:
        """The bytes the same scan would need with weights and activations in ``dtype``."""
        return (self.params + self.working_elems) * _ITEMSIZE[dtype] + self.recheck_bytes

    def line(self) -> str:
        """e.g. 'memory: 26.0 GB weights (bfloat16) + 1.2 GB working set = 27.2 GB of 79.1 GB free on cuda:0'."""
        return (f"memory: {_size(self.weights_bytes, True)} weights ({self.dtype}) + {_size(self.working_bytes, True)} "
                f"working set = {_size(self.total_bytes, True)} of {_size(self.free_bytes, True)} free on {self.where}")

    def advice(self) -> str:
        """What would fit the model: a narrower dtype that fits here, and how many such GPUs (or how much memory)."""
        options = []
        narrower = _NARROWER[_NARROWER.index(self.dtype) + 1:] if self.dtype in _NARROWER else ()
        for dtype in narrower:
            if self.total_at(dtype) <= self.free_bytes:
                options.append(f"--dtype {dtype} (~{_size(self.total_at(dtype))})")
                break
        if self.gpu and self.device_free > 0:
            options.append(f"--device-map auto over {math.ceil(self.total_bytes / self.device_free)} GPUs")
        else:
            options.append(f"a machine with ~{_size(self.total_bytes)} free")
        return " or ".join(options)

    def check(self) -> None:
        """Nothing when the model fits; MemoryRefusal (one line, with what would fit) when it does not."""
        if not self.fits:
            raise MemoryRefusal(f"{self.model} needs ~{_size(self.total_bytes)} in {self.dtype} but {self.where} "
                                f"has {_size(self.free_bytes)} free: use {self.advice()}")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def count_parameters(config: Any) -> tuple[int, int]:
    """(all parameters, those of one decoder layer) of the causal LM ``config`` describes, without weights:
    the model is built on the meta device, and a tied head shares its tensor, so it is counted once."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config)
    model.tie_weights()                # from_config leaves a tied head as a second tensor until loading
    total = sum(p.numel() for p in model.parameters())
    layers = _layers(model)
    layer = sum(p.numel() for p in layers[0].parameters()) if layers is not None and len(layers) else 0
    return int(total), int(layer)


def _layers(model: Any) -> Any:
    decoder = getattr(model, "model", None)
    return getattr(decoder, "layers", None)


def _meminfo(field: str = "MemAvailable") -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise FpprovError(f"cannot read the memory size: /proc/meminfo has no {field}")


def total_ram() -> int:
    """The host's RAM in bytes."""
    try:
        import psutil
    except ImportError:
        return _meminfo("MemTotal")
    return int(psutil.virtual_memory().total)


def free_memory(device: torch.device | str) -> int:
    """Free bytes on ``device``: CUDA's own count for a GPU, available RAM for the CPU (and devices whose
    memory is the host's, e.g. mps)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil
    except ImportError:
        return _meminfo()
    return int(psutil.virtual_memory().available)


def _where(devices: list[torch.device]) -> str:
    names = [str(d) for d in devices]
    if len(names) == 1:
        return names[0]
    kind = "GPUs" if all(d.type == "cuda" for d in devices) else "devices"
    return f"{len(names)} {kind} ({', '.join(names)})"


def estimate_memory(config: Any, dtype: torch.dtype, device: torch.device, batch: int = 1024, head_chunk: int = 8192,
                    device_map: str | Mapping[str, Any] | None = None, model: str = "model") -> MemoryEstimate:
    """The scan's memory need for ``config`` at ``dtype`` against the free memory of ``device`` (or the map's).

    Working set: the batch's hidden state per layer (B x D x L, an upper bound on what the autograd-free
    forward keeps), a head chunk of logits for the larger of the batch and the head's pooled row block, and in
    float64 one decoder layer's weights plus one head chunk (the exact re-check casts them one at a time)."""
    params, layer_params = count_parameters(config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(getattr(text, "hidden_size", 0) or 0)
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    inner = int(getattr(text, "intermediate_size", 0) or 0)
    working = batch * (hidden * layers + inner) + max(batch, _HEAD_ROW_BLOCK) * head_chunk
    recheck = 8 * (layer_params + head_chunk * hidden)
    devices = map_devices(device, device_map)
    frees = [free_memory(d) for d in devices]
    return MemoryEstimate(model=model, dtype=dtype_name(dtype), params=params, working_elems=working,
                          recheck_bytes=recheck, free_bytes=sum(frees), where=_where(devices),
                          device_free=min(frees), gpu=all(d.type == "cuda" for d in devices))
