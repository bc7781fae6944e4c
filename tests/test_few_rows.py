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
    assert few_rows.onednn_works()                                              # probed before recording
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


def test_without_gradients_no_product_is_fed_a_single_row(monkeypatch):
    """One row goes to oneDNN as two (its one-row kernel sums in another order than its many-row one)."""
    if not few_rows.onednn_works():
        pytest.skip("this torch has no working oneDNN linear")
    fed = []
    real = few_rows._OPS

    class Spy:
        _reorder_linear_weight = staticmethod(real._reorder_linear_weight)

        @staticmethod
        def _linear_pointwise(a, *args):
            fed.append(a.shape[0])
            return real._linear_pointwise(a, *args)

    monkeypatch.setattr(few_rows, "_OPS", Spy)
    rows, a = torch.randn(64, 8), torch.randn(1, 8)
    with torch.no_grad():
        torch.testing.assert_close(times_rows_t(a, rows, 1), a @ rows.T, rtol=1e-5, atol=1e-6)
    assert fed == [2]


@needs_onednn
@pytest.mark.parametrize("family", ["gemma3", "llama"])
def test_t_of_a_seed_is_the_same_bit_for_bit_in_any_batch(tiny_model_dir, family):
    """The products oneDNN runs (two rows and more) give each row the same bits whatever the other rows are,
    so a residual measured in the batch that found an FP is the one it has alone: no cross-batch drift."""
    from fpprov.models import load_model
    from fpprov.vectors import EmbeddingMap

    if not few_rows.onednn_works():
        pytest.skip("this torch has no working oneDNN linear")
    fmap = EmbeddingMap(load_model(str(tiny_model_dir(family)), device="cpu"))
    x = fmap.initial_vectors(range(10), 0.1)                                   # (10, D)
    with torch.no_grad():
        alone = torch.cat([fmap(x[i:i + 1]) for i in range(10)])               # (10, D)
        for size in (2, 3, 5, 10):
            assert torch.equal(fmap(x[:size]), alone[:size]), size


class _Changed:
    """torch.ops.mkldnn as a later torch might have it: ``how`` says what changed."""

    def __init__(self, how: str):
        self.how, self._real = how, torch.ops.mkldnn
        self._reorder_linear_weight = self._real._reorder_linear_weight
        if how != "missing":
            self._linear_pointwise = getattr(self, f"_{how}")

    def _signature(self, a, weight, bias, attr, scalars, algorithm):
        return self._real._linear_pointwise(a, weight, bias, attr, scalars)   # an argument fewer: torch raises

    def _shape(self, *args):
        return self._real._linear_pointwise(*args)[:, :-1]                     # another output layout

    def _value(self, *args):
        return 2 * self._real._linear_pointwise(*args)                         # another meaning


@needs_onednn
@pytest.mark.parametrize("probed", [False, True], ids=["before-probe", "mid-run"])
@pytest.mark.parametrize("how", ["missing", "signature", "shape", "value"])
def test_a_missing_or_changed_private_op_falls_back_to_the_public_forms(tiny_model_dir, monkeypatch, how, probed):
    """torch's private oneDNN ops carry no stability promise: a missing op or a changed signature (found by
    the probe before first use, or by a call mid-run) gives them up with one warning, and T (decoder, head
    and mixture) comes out of the public forms, the same within float32 rounding, with no crash."""
    from torch.utils.weak import WeakIdKeyDictionary

    from fpprov.models import load_model
    from fpprov.vectors import EmbeddingMap, iterate

    if not few_rows.onednn_works():
        pytest.skip("this torch has no working oneDNN linear")
    fmap = EmbeddingMap(load_model(str(tiny_model_dir("gemma3", init=0.3)), device="cpu"))  # iteration converges
    x = fmap.initial_vectors(range(3), 0.3)                                    # (3, D)
    with torch.no_grad():
        expected = fmap(x)                                                     # oneDNN
    (reference,) = iterate(fmap, [0], fmap.initial_vectors([0], 0.3), max_steps=30)
    monkeypatch.setattr(few_rows, "ONEDNN", True)          # restored after the test, as are the rest
    monkeypatch.setattr(few_rows, "_PROBED", [True] if probed else [])
    monkeypatch.setitem(few_rows._PACKED, "w", WeakIdKeyDictionary())
    monkeypatch.setitem(few_rows._PACKED, "t", WeakIdKeyDictionary())
    monkeypatch.setattr(few_rows, "_OPS", _Changed(how))
    if how == "value" and probed:
        pytest.skip("a wrong value after a passed probe is not detectable per call")
    with pytest.warns(RuntimeWarning, match="private oneDNN linear ops failed") as caught, torch.no_grad():
        got = fmap(x)
        again = fmap(x)
    assert len(caught) == 1 and few_rows.ONEDNN is False and not uses_onednn(x, fmap.matrix)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, got, rtol=0, atol=0)
    (fallback,) = iterate(fmap, [0], fmap.initial_vectors([0], 0.3), max_steps=30)
    assert reference.converged and fallback.converged, fallback.stop_detail
    torch.testing.assert_close(fallback.vector, reference.vector, rtol=1e-5, atol=1e-5)
