"""Float64 re-checks cast one layer at a time: their peak extra memory is one layer's float64 copy, never a
second model, on the shortcut and on the model's own forward (--bos, unknown architectures) alike."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from fpprov.scan import hidden as forward
from fpprov.errors import FpprovError
from fpprov.models import load_model
from tiny import FAMILIES


def _peak_bytes(fn) -> tuple[int, int]:
    """(peak, left): the most CPU bytes torch's allocator held at once during ``fn()`` beyond what it held
    before, and what was still held after, from the profiler's allocation and free events in time order."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    assert events, "the profiler saw no allocation"
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak, held


def _float64_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) * 8


def _bos_inputs(loaded, n: int = 2) -> torch.Tensor:
    ids = torch.arange(n)                                                      # (n,)
    return torch.stack([torch.full_like(ids, loaded.tokenizer.bos_token_id), ids], 1)  # (n, 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_float64_paths_hold_at_most_one_layer_in_float64(family, tiny_model_dir, one_torch_thread):
    loaded = load_model(str(tiny_model_dir(family, False)))
    model, decoder = loaded.model, forward._decoder(loaded.model)
    seqs = _bos_inputs(loaded)                                                 # (2, 2)
    layer = max(_float64_bytes(m) for m in decoder.layers)
    # Two sequences of two tokens: the activations are small next to a layer. Their float64 peak is twice the
    # float32 forward's; the bound allows that twice over (the cast embedding rows included). Neither the
    # embedding matrix nor the head is ever cast: only the rows of the ids at hand.
    activations32, _ = _peak_bytes(lambda: forward.hidden_forward(model, seqs))
    bound = layer + 4 * activations32
    assert bound < _float64_bytes(decoder) - _float64_bytes(decoder.embed_tokens), "a whole-model cast must fail"
    peak, left = _peak_bytes(lambda: forward.hidden_forward(model, seqs, torch.float64))
    assert layer <= peak <= bound and left == 0
    peak, left = _peak_bytes(lambda: forward.hidden_len1(model, seqs[:, 1], forward.layer_layout(model), torch.float64))
    assert peak <= bound and left == 0   # the shortcut casts one submodule at a time and keeps nothing
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(b.dtype != torch.float64 for b in model.buffers())


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_by_layer_forward_equals_the_whole_float64_model(family, tiny_model_dir, one_torch_thread):
    loaded = load_model(str(tiny_model_dir(family, False)))
    seqs = _bos_inputs(loaded, n=len(loaded.tokenizer))                        # (N, 2)
    with torch.no_grad():
        whole = forward._decoder(copy.deepcopy(loaded.model).double())(input_ids=seqs, use_cache=False)
        layered = forward.hidden_forward(loaded.model, seqs, torch.float64)   # (N, D)
    assert layered.dtype == torch.float64
    assert torch.equal(layered, whole.last_hidden_state[:, -1, :])


def test_a_failing_layer_leaves_the_model_in_its_own_dtype(tiny_model_dir, monkeypatch):
    loaded = load_model(str(tiny_model_dir("llama", False)))
    layer = forward._decoder(loaded.model).layers[1]

    def fail(*args, **kwargs):
        assert next(layer.parameters()).dtype == torch.float64   # cast while it runs
        raise RuntimeError("boom")

    monkeypatch.setattr(layer.mlp, "forward", fail)
    with pytest.raises(RuntimeError, match="boom"), torch.no_grad():
        forward.hidden_forward(loaded.model, _bos_inputs(loaded), torch.float64)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())


class _Wrapped(torch.nn.Module):
    """An input embedding that is more than a row lookup: its float64 rows cannot be taken one id at a time."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.inner(ids)


@pytest.mark.parametrize("part", ["layers", "embed_tokens"])
def test_a_decoder_that_cannot_be_driven_is_refused_rather_than_cast_whole(part, tiny_model_dir, monkeypatch):
    loaded = load_model(str(tiny_model_dir("qwen3", False)))
    decoder = forward._decoder(loaded.model)
    inner = getattr(decoder, part)
    monkeypatch.setitem(decoder._modules, part,
                        torch.nn.Sequential(*inner) if part == "layers" else _Wrapped(inner))
    with pytest.raises(FpprovError, match="one layer at a time"):
        forward.hidden_forward(loaded.model, _bos_inputs(loaded), torch.float64)
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
