"""Final hidden states for single-token inputs, exactly and cheaply.

For an input of length 1 attention has one key, so its softmax is exactly 1 and the attention output is
``o_proj(v_proj(x))`` with each key/value head repeated over its query group: Q, K, RoPE, the mask and the
softmax cannot change a bit of the result and are skipped. This holds for the decoder layouts below;
any other architecture (or an input longer than one token, e.g. with a BOS prefix) runs the model's own
forward.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.func import functional_call

# model_type -> where the norms sit around attention and MLP.
PRE_NORM = {"llama", "mistral", "qwen2", "qwen3"}          # x + attn(norm(x)); x + mlp(norm(x))
SANDWICH_NORM = {"gemma2", "gemma3_text", "gemma3"}         # x + norm(attn(norm(x))); x + norm(mlp(norm(x)))
POST_NORM = {"olmo2"}                                       # x + norm(attn(x)); x + norm(mlp(x))


def layer_layout(model: Any) -> str | None:
    """'pre' | 'sandwich' | 'post' when the length-1 shortcut is known to be exact, else None."""
    model_type = getattr(model.config, "model_type", "")
    decoder = _decoder(model)
    if decoder is None or not hasattr(decoder, "layers") or not hasattr(decoder, "norm"):
        return None
    attn = getattr(decoder.layers[0], "self_attn", None)
    # Sinks, value norms or other extras would make the shortcut wrong: only plain v/o projections.
    if attn is None or not hasattr(attn, "v_proj") or not hasattr(attn, "o_proj") or hasattr(attn, "sinks") \
            or hasattr(attn, "v_norm"):
        return None
    if model_type in PRE_NORM:
        return "pre"
    if model_type in SANDWICH_NORM:
        return "sandwich"
    if model_type in POST_NORM:
        return "post"
    return None


def _decoder(model: Any) -> Any:
    getter = getattr(model, "get_decoder", None)
    decoder = getter() if callable(getter) else None
    return decoder if decoder is not None else getattr(model, "model", None)


def _attention_len1(attn: Any, x: torch.Tensor, n_heads: int, n_kv: int) -> torch.Tensor:
    v = attn.v_proj(x)                                            # (B, n_kv * hd)
    head_dim = v.shape[-1] // n_kv
    if isinstance(attn, _CastLayer) and n_heads != n_kv:
        return _grouped_o_proj(attn._layer.o_proj, v, n_heads, n_kv, head_dim)
    v = v.view(-1, n_kv, head_dim).repeat_interleave(n_heads // n_kv, dim=1)  # (B, n_heads, hd)
    return attn.o_proj(v.reshape(v.shape[0], n_heads * head_dim))  # (B, D)


def _grouped_o_proj(o_proj: Any, v: torch.Tensor, n_heads: int, n_kv: int, head_dim: int) -> torch.Tensor:
    """o_proj(v repeated over each query group) as one product with o_proj's weight summed over the group.

    Used for re-checks in a wider dtype (float64), where the summed weight is exact to the last bit that
    matters and the product is group times smaller (4x on gemma3-270m); the scan-dtype path keeps the
    model's own o_proj so that it stays bit-identical to the model's forward.
    """
    weight = o_proj.weight                                        # (D, n_heads * hd)
    key = (v.dtype, weight._version, weight.data_ptr())
    cache = o_proj.__dict__.setdefault("_fpprov_grouped", {})
    if key not in cache:
        cache.clear()
        grouped = weight.to(v.dtype).view(weight.shape[0], n_kv, n_heads // n_kv, head_dim).sum(2)
        cache[key] = grouped.reshape(weight.shape[0], n_kv * head_dim)  # (D, n_kv * hd)
    out = v @ cache[key].T                                        # (B, D)
    return out if o_proj.bias is None else out + o_proj.bias.to(v.dtype)


def _layer_len1(layer: Any, h: torch.Tensor, layout: str, n_heads: int, n_kv: int) -> torch.Tensor:
    if layout == "pre":
        h = h + _attention_len1(layer.self_attn, layer.input_layernorm(h), n_heads, n_kv)
        return h + layer.mlp(layer.post_attention_layernorm(h))
    if layout == "sandwich":
        a = _attention_len1(layer.self_attn, layer.input_layernorm(h), n_heads, n_kv)
        h = h + layer.post_attention_layernorm(a)
        return h + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(h)))
    # post
    h = h + layer.post_attention_layernorm(_attention_len1(layer.self_attn, h, n_heads, n_kv))
    return h + layer.post_feedforward_layernorm(layer.mlp(h))


def _head_counts(model: Any) -> tuple[int, int]:
    config = model.config
    n_heads = config.num_attention_heads
    return n_heads, getattr(config, "num_key_value_heads", None) or n_heads


def _as_dtype(module: Any, dtype: torch.dtype) -> Callable[..., torch.Tensor]:
    """Call ``module`` with its parameters and buffers cast to ``dtype`` on the fly (no model copy)."""
    if dtype == next(module.parameters()).dtype:
        return module
    state = {name: t.to(dtype) if t.is_floating_point() else t
             for name, t in list(module.named_parameters()) + list(module.named_buffers())}

    def call(*args: Any) -> torch.Tensor:
        return functional_call(module, state, args)

    return call


class _CastLayer:
    """A decoder layer whose submodules run in another dtype; attribute access mirrors the layer."""

    def __init__(self, layer: Any, dtype: torch.dtype):
        self._layer, self._dtype = layer, dtype

    def __getattr__(self, name: str) -> Any:
        sub = getattr(self._layer, name)
        if name == "self_attn":
            return _CastLayer(sub, self._dtype)
        if isinstance(sub, torch.nn.Module):
            return _as_dtype(sub, self._dtype)
        return sub


def hidden_len1(model: Any, input_ids: torch.Tensor, layout: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Final-norm hidden state of each single-token input ``input_ids`` (B,) -> (B, D).

    ``dtype`` (e.g. float64) computes with weights cast layer by layer, for exact re-checks without a
    second copy of the model in memory.
    """
    decoder = _decoder(model)
    n_heads, n_kv = _head_counts(model)
    embed = decoder.embed_tokens if hasattr(decoder, "embed_tokens") else model.get_input_embeddings()
    if dtype is None or dtype == embed.weight.dtype:
        h = embed(input_ids)                                      # (B, D), includes any embedding scale
        for layer in decoder.layers:
            h = _layer_len1(layer, h, layout, n_heads, n_kv)
        return decoder.norm(h)                                    # (B, D)
    rows = embed.weight[input_ids].to(dtype)                      # (B, D)
    scale = getattr(embed, "embed_scale", None)
    h = rows * scale.to(dtype) if scale is not None else rows     # Gemma scales inside the module
    for layer in decoder.layers:
        h = _layer_len1(_CastLayer(layer, dtype), h, layout, n_heads, n_kv)
    return _as_dtype(decoder.norm, dtype)(h)


def hidden_forward(model: Any, input_ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Last-position final hidden state of the model's own forward for sequences ``input_ids`` (B, T)."""
    decoder = _decoder(model)
    if dtype is None or dtype == next(model.parameters()).dtype:
        out = decoder(input_ids=input_ids, use_cache=False)
        return out.last_hidden_state[:, -1, :]                    # (B, D)
    state = {name: t.to(dtype) if t.is_floating_point() else t
             for name, t in list(decoder.named_parameters()) + list(decoder.named_buffers())}
    out = functional_call(decoder, state, (), {"input_ids": input_ids, "use_cache": False})
    return out.last_hidden_state[:, -1, :]
