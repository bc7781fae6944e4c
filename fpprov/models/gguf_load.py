"""Load a GGUF checkpoint tensor by tensor into a model, so the peak memory is the model plus one slice.

transformers' own GGUF path dequantizes every tensor into a state dict first and then builds the model, so
it holds the weights about twice at its peak (docs/development.md has gemma3-270m's figures). Here the
model is built empty, and each GGUF tensor is dequantized (the vocabulary-sized ones in row blocks) and
copied into its parameter. The name mapping and the per-tensor fix-ups (e.g. Gemma's norm offset, Llama's
Q/K row permutation) are transformers' own, so the result is bit-identical to ``from_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

ROW_BLOCK_BYTES = 64 * 2**20   # dequantize vocabulary-sized tensors this many output bytes at a time


def _processors() -> tuple[dict[str, Any], tuple[type, ...]]:
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS, Gemma2TensorProcessor, LlamaTensorProcessor, TensorProcessor)

    # Processors that touch a tensor element-wise or rename nothing: safe to run on any row block
    # (Llama's Q/K permutation is the exception, handled by never splitting those tensors).
    return TENSOR_PROCESSORS, (TensorProcessor, LlamaTensorProcessor, Gemma2TensorProcessor)


def _row_blockable(name: str) -> bool:
    return ".attn_q." not in name and ".attn_k." not in name


def load_gguf_streaming(gguf_path: Path, config: Any, torch_dtype: torch.dtype) -> Any | None:
    """The causal LM of ``gguf_path`` with weights in ``torch_dtype``, or None when this loader does not know
    the architecture's tensor processing (the caller then uses transformers' own loader)."""
    import numpy as np
    from gguf import GGUFReader, dequantize
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights
    from transformers.modeling_gguf_pytorch_utils import get_gguf_hf_weights_map

    processors, simple = _processors()
    reader = GGUFReader(str(gguf_path))     # parsing its vocabulary takes seconds: once
    architecture = str(reader.fields["general.architecture"].contents())
    reader.fields.clear()                   # ~0.6 GiB of parsed vocabulary strings for gemma3: not needed here
    processor_class = processors.get(architecture, simple[0])
    if processor_class not in simple:
        return None
    # The simple processors read only the head counts (Llama's Q/K permutation) from their config.
    processor = processor_class(config={"num_attention_heads": getattr(config, "num_attention_heads", None),
                                        "num_key_value_heads": getattr(config, "num_key_value_heads", None)})
    parsed: dict[str, Any] = {}

    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.tie_weights()                                    # before loading: a tied head is not a second copy
    mapping = get_gguf_hf_weights_map(model, processor)
    params = dict(model.named_parameters())               # tied weights appear once
    loaded: set[str] = set()
    for tensor in reader.tensors:
        rows = int(tensor.data.shape[0]) if tensor.data.ndim > 1 else 1
        row_bytes = max(1, int(np.prod(tensor.shape[:-1] if len(tensor.shape) > 1 else [1])) * 4)
        block = rows if not _row_blockable(tensor.name) else max(1, ROW_BLOCK_BYTES // row_bytes)
        target = None
        for start in range(0, rows, block):
            part = tensor.data[start:start + block] if rows > 1 else tensor.data
            result = processor.process(weights=dequantize(part, tensor.tensor_type), name=tensor.name,
                                       tensor_key_mapping=mapping, parsed_parameters=parsed)
            if target is None:
                hf_name = mapping.get(result.name)
                if hf_name is None or hf_name not in params:
                    break                                    # a tensor the model has no parameter for
                target = params[hf_name]
                if rows > 1 and (target.shape[0] != rows or tuple(target.shape)[1:] != tuple(result.weights.shape)[1:]):
                    return None                              # a layout this loader does not know
                loaded.add(hf_name)
            with torch.no_grad():
                values = torch.from_numpy(np.ascontiguousarray(result.weights)).to(torch_dtype)
                if rows > 1:
                    target[start:start + values.shape[0]].copy_(values)
                else:
                    target.copy_(values.reshape(target.shape))
    if set(params) - loaded:
        return None                                          # something left uninitialised: not ours to load
    return model
