"""One place that decides which --device values this torch build can actually use, and which devices a
device map puts weights on."""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..errors import FpprovError


def _xpu_available() -> bool:
    xpu = getattr(torch, "xpu", None)
    try:
        return bool(xpu is not None and xpu.is_available())
    except Exception:
        return False


def _mps_available() -> bool:
    try:
        return bool(torch.backends.mps.is_available())
    except Exception:
        return False


def usable_devices() -> list[str]:
    """What this machine accepts, for error messages: cpu, cuda[:N], mps, xpu."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append(f"cuda[:0..{torch.cuda.device_count() - 1}]")
    if _mps_available():
        names.append("mps")
    if _xpu_available():
        names.append("xpu")
    return names


def resolve_device(name: str) -> torch.device:
    """'auto', 'cpu', 'cuda[:N]', 'mps' or 'xpu' -> a torch.device this build can use; FpprovError otherwise.

    torch.device() accepts many types (meta, xpu, mps, hpu, ...) that the running build may not support;
    only the ones that can actually hold a model are accepted, so bad input fails before any work."""
    name = (name or "").strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    choices = f"use auto or {', '.join(usable_devices())}"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise FpprovError(f"unknown device {name!r}: {choices}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise FpprovError(f"device {name} asked for but CUDA is not available; {choices}")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise FpprovError(f"device {name} does not exist: this machine has {count} CUDA device(s); {choices}")
        return dev
    if dev.type == "mps" and _mps_available():
        return dev
    if dev.type == "xpu" and _xpu_available():
        return dev
    raise FpprovError(f"device {name} cannot be used by this torch build; {choices}")


def map_devices(device: torch.device, device_map: str | Mapping[str, Any] | None) -> list[torch.device]:
    """The devices a load would put weights on: ``device``, every visible GPU for ``auto``, or a map's devices."""
    if device_map is None:
        return [device]
    if device_map == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.device("cuda", i) for i in range(count)] or [torch.device("cpu")]
    if isinstance(device_map, str):
        return [torch.device(device_map)]
    seen: list[torch.device] = []
    for value in device_map.values():
        dev = torch.device(f"cuda:{value}" if isinstance(value, int) else value)
        if dev not in seen:
            seen.append(dev)
    return seen


# accelerate's placement strategies, as from_pretrained(device_map=...) accepts them
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def check_device_map(device_map: str | None, world: int = 1) -> str | None:
    """A --device-map value checked before any work: None, or one of accelerate's strategies.

    Under torchrun each rank holds a whole model on its own device, so a device map (one model over several
    devices) and several ranks are refused together."""
    if device_map is None or device_map.strip().lower() in ("", "none"):
        return None
    value = device_map.strip()
    if value not in DEVICE_MAP_STRATEGIES:
        raise FpprovError(f"unknown --device-map {device_map!r}: use {', '.join(DEVICE_MAP_STRATEGIES)} "
                          "(accelerate's strategies) or leave it out")
    if world > 1:
        raise FpprovError(f"--device-map {value} spreads one model over several devices, but torchrun started "
                          f"{world} ranks of one device each: use one or the other")
    return value
