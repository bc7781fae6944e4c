"""Final hidden states for single-token inputs, exactly and cheaply.

For an input of length 1 attention has one key, so its softmax is exactly 1 and the attention output is
``o_proj(v_proj(x))`` with each key/value head repeated over its query group: Q, K, RoPE, the mask and the
softmax cannot change a bit of the result and are skipped. This holds for the decoder layouts below;
any other architecture (or an input longer than one token, e.g. with a BOS prefix) runs the model's own
forward.

A wider dtype (a float64 re-check, a bfloat16 scan's float32 rung) runs one way on both paths: each
decoder layer's parameters are cast in place while it runs and restored after (``cast_parameters``; the
model's own forward through hooks on each layer), so a re-check never holds a second copy of the model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ..errors import FpprovError

# model_type -> where the norms sit around attention and MLP. Each is under a bit-identity test against the
# model's own forward (tests/test_scan_exact.py); any other type runs that forward.
PRE_NORM = {"llama", "mistral", "qwen2", "qwen3"}          # x + attn(norm(x)); x + mlp(norm(x))
SANDWICH_NORM = {"gemma2", "gemma3_text"}                   # x + norm(attn(norm(x))); x + norm(mlp(norm(x)))
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


def _attention_len1(attn: Any, x: torch.Tensor, n_heads: int, n_kv: int, grouped: bool) -> torch.Tensor:
    v = attn.v_proj(x)                                            # (B, n_kv * hd)
    head_dim = v.shape[-1] // n_kv
    if grouped and n_heads != n_kv:
        return _grouped_o_proj(attn.o_proj, v, n_heads, n_kv, head_dim)
    v = v.view(-1, n_kv, head_dim).repeat_interleave(n_heads // n_kv, dim=1)  # (B, n_heads, hd)
    return attn.o_proj(v.reshape(v.shape[0], n_heads * head_dim))  # (B, D)


def _grouped_o_proj(o_proj: Any, v: torch.Tensor, n_heads: int, n_kv: int, head_dim: int) -> torch.Tensor:
    """o_proj(v repeated over each query group) as one product with o_proj's weight summed over the group.

    Used for re-checks in a wider dtype (float64), where the summed weight is exact to the last bit that
    matters and the product is group times smaller (4x on gemma3-270m); the scan-dtype path keeps the
    model's own o_proj so that it stays bit-identical to the model's forward. The summed weight is made
    once per call and layer, like every other cast, and not kept: kept for every layer it would be a
    float64 matrix per layer alive between re-checks.
    """
    weight = o_proj.weight                                        # (D, n_heads * hd)
    grouped = weight.to(v.dtype).view(weight.shape[0], n_kv, n_heads // n_kv, head_dim).sum(2)
    out = v @ grouped.reshape(weight.shape[0], n_kv * head_dim).T  # (B, D)
    return out if o_proj.bias is None else out + o_proj.bias.to(v.dtype)


def _layer_len1(layer: Any, h: torch.Tensor, layout: str, n_heads: int, n_kv: int, grouped: bool) -> torch.Tensor:
    if layout == "pre":
        h = h + _attention_len1(layer.self_attn, layer.input_layernorm(h), n_heads, n_kv, grouped)
        return h + layer.mlp(layer.post_attention_layernorm(h))
    if layout == "sandwich":
        a = _attention_len1(layer.self_attn, layer.input_layernorm(h), n_heads, n_kv, grouped)
        h = h + layer.post_attention_layernorm(a)
        return h + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(h)))
    # post
    h = h + layer.post_attention_layernorm(_attention_len1(layer.self_attn, h, n_heads, n_kv, grouped))
    return h + layer.post_feedforward_layernorm(layer.mlp(h))


def _head_counts(model: Any) -> tuple[int, int]:
    config = model.config
    n_heads = config.num_attention_heads
    return n_heads, getattr(config, "num_key_value_heads", None) or n_heads


def _to_device_of(module: Any, h: torch.Tensor) -> torch.Tensor:
    """``h`` where ``module``'s weights are: a device map may put consecutive layers on different GPUs."""
    weight = next(module.parameters(), None)
    return h if weight is None else h.to(weight.device)


def hidden_len1(model: Any, input_ids: torch.Tensor, layout: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Final-norm hidden state of each single-token input ``input_ids`` (B,) -> (B, D).

    ``dtype`` (e.g. float64) computes with each layer's weights cast while it runs, for exact re-checks
    without a second copy of the model in memory.
    """
    decoder = _decoder(model)
    n_heads, n_kv = _head_counts(model)
    embed = decoder.embed_tokens if hasattr(decoder, "embed_tokens") else model.get_input_embeddings()
    wider = dtype is not None and dtype != embed.weight.dtype
    if wider:
        h = embed_rows(embed, input_ids.to(embed.weight.device), dtype)          # (B, D)
    else:
        h = embed(input_ids.to(embed.weight.device))              # (B, D), includes any embedding scale
    # The scan dtype keeps the model's own o_proj, bit-identical to its forward; a wider one the grouped form.
    for layer in decoder.layers:
        with cast_parameters(layer, dtype if wider else None):
            h = _layer_len1(layer, _to_device_of(layer, h), layout, n_heads, n_kv, grouped=wider)
    with cast_parameters(decoder.norm, dtype if wider else None):
        return decoder.norm(_to_device_of(decoder.norm, h)).to(input_ids.device)   # (B, D), where the ids were


def hidden_forward(model: Any, input_ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Last-position final hidden state of the model's own forward for sequences ``input_ids`` (B, T).

    ``dtype`` (e.g. float64) runs the model's own decoder forward with each decoder layer (and the final
    norm) cast to ``dtype`` only while it runs, so the extra memory is one layer's cast copy, never a second
    model; the embeddings are cast row by row for the ids at hand.
    """
    decoder = _decoder(model)
    if dtype is None or dtype == next(model.parameters()).dtype:
        out = decoder(input_ids=input_ids, use_cache=False)
        return out.last_hidden_state[:, -1, :].to(input_ids.device)   # (B, D), where the ids were
    embeds, parts = _castable_parts(model, decoder)
    with _cast_while_called(parts, dtype):
        out = decoder(inputs_embeds=embed_rows(embeds, input_ids, dtype), use_cache=False)
    return out.last_hidden_state[:, -1, :].to(input_ids.device)   # (B, D)


_LAYER_LISTS = ("layers", "h", "blocks")
_TOKEN_EMBEDDINGS = ("embed_tokens", "wte", "embed_in")   # embed_in: GPT-NeoX (Pythia)


def _castable_parts(model: Any, decoder: Any) -> tuple[Any, list[torch.nn.Module]]:
    """The decoder's input embedding and the modules to cast one at a time: each layer, then every other
    child that holds parameters (the final norm). Raises FpprovError for a decoder that cannot be driven so:
    casting it whole would hold a second copy of the model."""
    model_type = getattr(model.config, "model_type", "?")
    # Llama-style decoders name them layers / embed_tokens, GPT-2-style ones h / wte (its wpe, a child with
    # parameters, is cast while called like the final norm).
    layers = next((getattr(decoder, name) for name in _LAYER_LISTS
                   if isinstance(getattr(decoder, name, None), torch.nn.ModuleList)), None) if decoder is not None else None
    embeds = next((getattr(decoder, name) for name in _TOKEN_EMBEDDINGS
                   if getattr(decoder, name, None) is not None), None) if decoder is not None else None
    if layers is None or not _plain_embedding(embeds):
        raise FpprovError(f"cannot re-check {model_type} in float64 one layer at a time: its decoder lacks a "
                          "list of layers (layers, h, blocks) or a plain token embedding (embed_tokens, wte, embed_in) "
                          "(casting the whole model would double its memory)")
    if any(True for _ in decoder.named_parameters(recurse=False)):
        raise FpprovError(f"cannot re-check {model_type} in float64 one layer at a time: its decoder holds "
                          "parameters outside its modules")
    others = [m for m in decoder.children() if m is not layers and m is not embeds and any(True for _ in m.parameters())]
    return embeds, list(layers) + others


def _plain_embedding(embeds: Any) -> bool:
    # A lookup, optionally times a constant `embed_scale` (Gemma): anything else could not be cast by rows.
    return isinstance(embeds, torch.nn.Embedding) and embeds.max_norm is None and \
        (type(embeds) is torch.nn.Embedding or hasattr(embeds, "embed_scale"))


def embed_rows(embeds: torch.nn.Embedding, input_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The embedding module's output for ``input_ids`` (any shape) computed in ``dtype``, scale included."""
    rows = embeds.weight[input_ids].to(dtype)                     # (..., D)
    scale = getattr(embeds, "embed_scale", None)
    return rows * scale.to(dtype) if scale is not None else rows


@contextmanager
def cast_parameters(module: torch.nn.Module, dtype: torch.dtype | None) -> Iterator[None]:
    """While active, ``module``'s floating parameters and buffers hold ``dtype`` copies (nothing when None);
    restored on exit. The storage of each tensor is swapped through ``.data``, so the module's code (and any
    hook or device map around it) sees its ordinary parameters."""
    tensors = [] if dtype is None else [t for t in list(module.parameters()) + list(module.buffers())
                                        if t.is_floating_point() and t.dtype != dtype]
    saved = [(t, t.data) for t in tensors]
    for t in tensors:
        t.data = t.data.to(dtype)
    try:
        yield
    finally:
        for t, data in saved:
            t.data = data


@contextmanager
def _cast_while_called(modules: list[torch.nn.Module], dtype: torch.dtype) -> Iterator[None]:
    """While active, each of ``modules`` runs with its parameters cast to ``dtype`` (``cast_parameters``) from
    its call to its return, so one module's cast copy is alive at a time. Hooks leave the model's own forward
    (masks, rotary embeddings, layer types) in charge."""
    active: dict[torch.nn.Module, Any] = {}

    def restore(module: torch.nn.Module) -> None:
        ctx = active.pop(module, None)
        if ctx is not None:
            ctx.__exit__(None, None, None)

    def cast(module: torch.nn.Module, args: Any) -> None:
        restore(module)
        ctx = cast_parameters(module, dtype)
        ctx.__enter__()
        active[module] = ctx

    handles = [h for m in modules for h in (m.register_forward_pre_hook(cast),
                                            m.register_forward_hook(lambda m, a, o: restore(m)))]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for module in list(active):
            restore(module)
