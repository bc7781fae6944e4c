"""The few-row product forms (fpprov.vectors.kernels): which form runs when, and that each is the plain product."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import fpprov.vectors.kernels as few_rows
from fpprov.vectors.kernels import (ONEDNN, FewRowLinear, packed, row_blocks, times_rows_t, uses_onednn, uses_transposed_form,
                              weights_times_rows)

needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this torch has no oneDNN linear")


class _Recorder(TorchFunctionMode):
    """Records every torch function that reaches it (below FewRowLinear on the mode stack)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(func)
        return func(*args, **(kwargs or {}))


def test_row_blocks_take_the_largest_allowed_divisor():
    assert row_blocks(262144) == 64 and row_blocks(262144, most=256) == 256
    assert row_blocks(151936, most=256) == 128            # Qwen's 151,936 = 2^7 x 1,187
    assert row_blocks(65544) == 8 and row_blocks(65537) == 1
    assert row_blocks(49152) == 1                          # below 65,536 rows one GEMM is fine


def test_the_transposed_form_is_for_two_to_four_float32_rows_on_the_cpu():
    assert [uses_transposed_form(torch.zeros(s, 8)) for s in range(1, 7)] == [False, True, True, True, False, False]
    assert uses_transposed_form(torch.zeros(3, 1, 8))      # (S, L, D) with S x L = 3 rows
    assert not uses_transposed_form(torch.zeros(3, 8, dtype=torch.float64))
    assert not uses_transposed_form(torch.zeros(3, 0))


@pytest.mark.parametrize("grad", [False, True])   # oneDNN without gradients, the MKL forms with them
@pytest.mark.parametrize("rows", range(1, 7))
def test_vocabulary_products_equal_the_plain_ones_for_each_batch_size(rows, grad):
    gen = torch.Generator().manual_seed(rows)
    matrix = torch.randn(65536, 8, generator=gen)                               # (V, D)
    a = torch.randn(rows, 8, generator=gen)                                     # (S, D)
    y = torch.softmax(torch.randn(rows, 65536, generator=gen), -1)              # (S, V)
    a.requires_grad_(grad)
    y.requires_grad_(grad)
    assert uses_onednn(a, matrix) is (ONEDNN and not grad)
    head = times_rows_t(a, matrix, row_blocks(65536))                            # (S, V)
    mixed = weights_times_rows(y, matrix, row_blocks(65536, most=256))           # (S, D)
    assert head.requires_grad is mixed.requires_grad is grad
    torch.testing.assert_close(head, a @ matrix.T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed, y @ matrix, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows", range(1, 7))
def test_few_row_linear_is_the_linear_layer_with_its_gradients(rows):
    torch.manual_seed(rows)
    layer = torch.nn.Linear(16, 24)
    x = torch.randn(rows, 1, 16, requires_grad=True)                            # (S, L, D)
    plain = layer(x)
    (gx_plain, gw_plain) = torch.autograd.grad(plain.square().sum(), (x, layer.weight))
    with FewRowLinear():
        few = layer(x)
        (gx_few, gw_few) = torch.autograd.grad(few.square().sum(), (x, layer.weight))
    assert few.shape == plain.shape == (rows, 1, 24)
    torch.testing.assert_close(few, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx_few, gx_plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw_few, gw_plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows, transposed", [(1, False), (3, True), (5, False)])
def test_with_gradients_few_row_linear_runs_a_matmul_only_for_a_few_rows(rows, transposed):
    layer = torch.nn.Linear(16, 24)
    x = torch.randn(rows, 16)
    with _Recorder() as seen, FewRowLinear():
        layer(x)
    assert (F.linear in seen.calls) is not transposed
    assert any(getattr(f, "__name__", "") in ("matmul", "__matmul__") for f in seen.calls) is transposed


def _ran_onednn(calls) -> bool:
    return any("_linear_pointwise" in str(f) for f in calls)


@needs_onednn
@pytest.mark.parametrize("rows", [1, 3, 10])
def test_without_gradients_few_row_linear_runs_onednn_with_one_packing_per_weight(rows):
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 24)
    x = torch.randn(rows, 1, 16)                                                # (S, L, D)
    with torch.no_grad():
        plain = layer(x)
        with _Recorder() as seen, FewRowLinear():
            first, second = layer(x), layer(x)
    assert _ran_onednn(seen.calls) and F.linear not in seen.calls
    assert sum("_reorder_linear_weight" in str(f) for f in seen.calls) == 1     # packed once, then reused
    assert first.shape == plain.shape == (rows, 1, 24)
    torch.testing.assert_close(first, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(second, first, rtol=0, atol=0)


@needs_onednn
def test_a_changed_weight_is_packed_again():
    rows = torch.randn(64, 8)
    a = torch.randn(3, 8)
    with torch.no_grad():
        before = times_rows_t(a, rows, 1)
        rows.mul_(2)                                                            # in place: a new version
        after = times_rows_t(a, rows, 1)
    torch.testing.assert_close(after, 2 * before, rtol=1e-6, atol=1e-6)


@needs_onednn
def test_no_packing_when_the_copy_would_not_fit_in_memory(monkeypatch):
    monkeypatch.setattr(few_rows, "free_memory", lambda device: 1000)
    rows, a = torch.randn(64, 8), torch.randn(3, 8)                            # 2 KB of weight, 1 KB free
    with torch.no_grad(), _Recorder() as seen:
        assert packed(rows) is None
        torch.testing.assert_close(times_rows_t(a, rows, 1), a @ rows.T, rtol=1e-5, atol=1e-6)
    assert not _ran_onednn(seen.calls)
