"""Reading one checkpoint (a directory, a hub id, or a GGUF file in a folder) with transformers.

Refuses models that are not causal, and turns the loaders' exceptions into one-line reasons.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import FpprovError
from .gguf_load import load_gguf_streaming
from .memory import MemoryRefusal
from .gguf_cache import GgufCache

# Model types whose attention sees every position: [t] -> t means nothing there.
_BIDIRECTIONAL_TYPES = {"bert", "roberta", "xlm-roberta", "deberta", "deberta-v2", "electra", "distilbert",
                        "albert", "camembert", "modernbert", "t5", "bart", "mbart", "mt5"}
# What numpy and the gguf reader say when a file ends early or its offsets are garbage.
_CORRUPT_SIGNS = ("cannot reshape", "buffer is smaller", "mmap length", "out of bounds", "unpack requires",
                  "is gguf v", "not a valid gguf", "offset", "truncated")


def load_checkpoint(location: str, gguf_file: str | None, torch_dtype: torch.dtype, local_only: bool,
                    what: str, device_map: str | dict[str, Any] | None = None,
                    before_weights: Callable[[Any], None] | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) from ``location`` (``gguf_file`` inside it when given); ``what`` names it in errors.

    ``before_weights`` sees the config once it is read and checked, before any weight is (the memory check).
    ``device_map`` ({"": device} or "auto") lets transformers put each weight where it belongs as it reads
    it, without a full CPU copy first. A GGUF is dequantized on the CPU whichever way it loads (the quantized
    blocks are numpy arrays), so it is built there and moved by the caller; its conversion is cached on disk
    (fpprov.models.gguf_cache) and later loads read the cache instead."""
    cache = GgufCache.for_file(Path(location) / gguf_file) if gguf_file else None
    if cache is not None and cache.complete():
        try:
            return _read_checkpoint(str(cache.folder), None, torch_dtype, True, what, device_map, before_weights)
        except MemoryRefusal:
            raise                          # the GGUF itself would not fit either
        except FpprovError:
            cache.discard()                # an unreadable cache: convert the file again
    model, tokenizer = _read_checkpoint(location, gguf_file, torch_dtype, local_only, what, device_map,
                                        before_weights)
    if cache is not None:
        cache.store(model, tokenizer)
    return model, tokenizer


def _read_checkpoint(location: str, gguf_file: str | None, torch_dtype: torch.dtype, local_only: bool,
                     what: str, device_map: str | dict[str, Any] | None,
                     before_weights: Callable[[Any], None] | None) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"local_files_only": local_only}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    try:
        config = AutoConfig.from_pretrained(location, **kwargs)
    except Exception as exc:
        raise FpprovError(f"cannot read {what}: {_reason(exc, gguf_file)}") from None
    _check_causal(config, what)
    if before_weights is not None:
        before_weights(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = load_gguf_streaming(Path(location) / gguf_file, config, torch_dtype) if gguf_file else None
        if model is None:
            with _quiet_gguf_progress(bool(gguf_file)):
                placed = {} if gguf_file or device_map is None else {"device_map": device_map}
                model = AutoModelForCausalLM.from_pretrained(location, dtype=torch_dtype, **placed, **kwargs)
    except FpprovError:
        raise
    except Exception as exc:
        raise FpprovError(f"cannot load {what}: {_reason(exc, gguf_file)}") from None
    return model, tokenizer


def quiet_transformers() -> None:
    """transformers' warnings and progress bars off: the CLI reports loading itself."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


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


def _reason(exc: BaseException, gguf_file: str | None) -> str:
    """The loader's first line, or for a GGUF whose bytes do not parse: that it looks truncated or corrupt."""
    text = first_line(exc)
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


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
