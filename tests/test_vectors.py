"""The map T, both searches, batching and dedup on tiny and hand-constructed models (issue 3).

Models come from tests/tiny.py: the four families' tiny random models (conftest's ``tiny_model_dir``) and the
hand-built Llamas whose layers are silenced, so the head alone decides T and the FPs are known in closed form
(``hand_built_dir``; their builders and token ids are re-exported here for the other test_vectors_* files).
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny import HAND_HIDDEN as HIDDEN
from tiny import TOKEN_A, TOKEN_B, TOKEN_K, build_constant_head_model, build_two_token_model  # noqa: F401
from tiny import hand_built_dir  # noqa: F401  (a fixture)

from fpprov.models import load_model
from fpprov.vectors.study import VectorOptions, cluster_vectors, run_method
from fpprov.vectors import DescentSettings, EmbeddingMap, effective_embedding_matrix, gradient_descent, iterate

TORCH_DEFAULTS = DescentSettings()  # torch's AdamW and ReduceLROnPlateau defaults, lr 1e-2, loss ||r||


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models gain nothing from threads (see conftest.one_torch_thread)."""


@pytest.fixture(scope="session")
def constant_model(hand_built_dir):
    return load_model(str(hand_built_dir("constant")), device="cpu")


@pytest.fixture(scope="session")
def qwen_model(tiny_model_dir):
    return load_model(str(tiny_model_dir("qwen3")), device="cpu")


def test_map_is_mixture_of_embedding_rows(qwen_model):
    fmap = EmbeddingMap(qwen_model)
    x = fmap.initial_vectors([0, 1], 0.03)                                  # (2, D)
    y = torch.softmax(qwen_model.model(inputs_embeds=x[:, None]).logits[:, -1].float(), -1)
    expected = y @ qwen_model.input_embeddings().weight                     # (2, D)
    torch.testing.assert_close(fmap(x), expected, rtol=0, atol=1e-6)
    assert fmap.matrix.data_ptr() == qwen_model.input_embeddings().weight.data_ptr()  # plain module: no copy


def test_initial_vectors_reproducible_and_scaled(qwen_model):
    fmap = EmbeddingMap(qwen_model)
    a, b = fmap.initial_vectors([3, 4], 0.5), fmap.initial_vectors([3], 0.5)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert not torch.equal(a[0], a[1])
    assert 0.4 < float(a.std()) < 0.6


@pytest.mark.parametrize("method", ["iterate", "gradient"])
def test_constant_head_fp_is_found_by_both_methods(constant_model, method):
    fmap = EmbeddingMap(constant_model)
    e_k = constant_model.input_embeddings().weight[TOKEN_K]                 # (D,)
    y = fmap.mixture(fmap.initial_vectors([0], 0.02))[0]                    # (V,)
    assert 0.999 < float(y[TOKEN_K]) < 1.0  # almost all mass, not all of it
    options = VectorOptions(max_steps=3000)
    outcomes = run_method(fmap, method, [0, 1, 2], options, init_std=0.02)
    for outcome in outcomes:
        assert outcome.converged and outcome.stop_reason == "converged", outcome.stop_detail
        assert outcome.residual < 1e-6
        assert float((outcome.vector - e_k).norm()) < 1e-4
        residual = float((fmap(outcome.vector[None]) - outcome.vector[None]).norm())
        assert residual < 1e-6  # the stored residual is the stored vector's


def test_iterate_batched_equals_seed_by_seed(qwen_model):
    fmap = EmbeddingMap(qwen_model)
    seeds = [0, 1, 2, 3]
    batched = iterate(fmap, seeds, fmap.initial_vectors(seeds, 0.03), tol=1e-6, max_steps=200)
    for seed, together in zip(seeds, batched):
        (alone,) = iterate(fmap, [seed], fmap.initial_vectors([seed], 0.03), tol=1e-6, max_steps=200)
        assert together.converged and alone.converged
        assert together.steps == alone.steps
        torch.testing.assert_close(together.vector, alone.vector, rtol=0, atol=1e-6)


def test_gradient_batched_equals_seed_by_seed_with_own_schedules(qwen_model):
    fmap = EmbeddingMap(qwen_model)
    seeds = [0, 1, 2]
    kwargs = dict(settings=TORCH_DEFAULTS, tol=1e-6, max_steps=150, lr=1e-2)
    batched = gradient_descent(fmap, seeds, fmap.initial_vectors(seeds, 0.03), **kwargs)
    for seed, together in zip(seeds, batched):
        (alone,) = gradient_descent(fmap, [seed], fmap.initial_vectors([seed], 0.03), **kwargs)
        assert (together.steps, together.stop_reason) == (alone.steps, alone.stop_reason)
        assert together.lr_final == alone.lr_final
        torch.testing.assert_close(together.vector, alone.vector, rtol=0, atol=1e-6)
    # Each seed ran its own plateau schedule: they do not all end at one learning rate.
    assert len({o.lr_final for o in batched}) > 1


def test_gradient_matches_plain_torch_loop(constant_model):
    """One seed against the seed's own sketch: AdamW + ReduceLROnPlateau on ||x - detach(T(x))||."""
    fmap = EmbeddingMap(constant_model)
    x0 = fmap.initial_vectors([5], 0.02)                                    # (1, D)
    (ours,) = gradient_descent(fmap, [5], x0, TORCH_DEFAULTS, tol=1e-12, max_steps=40)
    x = torch.nn.Parameter(x0[0].clone())
    opt = torch.optim.AdamW([x], lr=1e-2)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    for _ in range(39):
        with torch.no_grad():
            t = fmap(x[None])[0]
        loss = torch.norm(x - t)
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step(loss.item())
    # BatchedAdamW and torch's AdamW round differently: 1.2e-7 apart after 40 steps (coordinates ~0.01-1).
    torch.testing.assert_close(ours.vector, x.detach(), rtol=0, atol=5e-7)


def test_no_detach_backpropagates_through_t(hand_built_dir):
    """Near the repelling FP e2 (slope 2 along e1), x - T(x) along e1 is -s but its gradient through T is
    (1 - 2)(-s) = +s: the two losses push the e1 coordinate in opposite directions."""
    model = load_model(str(hand_built_dir("two_token", slope=2.0)), device="cpu")
    fmap = EmbeddingMap(model)
    x0 = torch.eye(HIDDEN)[1][None] + 0.01 * torch.eye(HIDDEN)[0][None]     # (1, D): s = 0.01
    (detached,) = gradient_descent(fmap, [0], x0, max_steps=3, detach=True)
    (through,) = gradient_descent(fmap, [0], x0, max_steps=3, detach=False)
    assert float(detached.vector[0]) > 0.01 > float(through.vector[0])


def test_iterate_gives_up_on_a_cycle_and_says_why(hand_built_dir):
    model = load_model(str(hand_built_dir("two_token", slope=-3.0)), device="cpu")
    fmap = EmbeddingMap(model)
    (outcome,) = iterate(fmap, [0], fmap.initial_vectors([0], 0.3), max_steps=10_000, stall_window=20)
    assert outcome.stop_reason == "not_converging" and not outcome.converged
    assert outcome.steps == 20 and "not halved" in outcome.stop_detail
    (capped,) = iterate(fmap, [0], fmap.initial_vectors([0], 0.3), max_steps=7, stall_window=0)
    assert capped.stop_reason == "max_steps" and capped.steps == 7


def test_gradient_stops_at_lr_floor(qwen_model):
    fmap = EmbeddingMap(qwen_model)
    (outcome,) = gradient_descent(fmap, [0], fmap.initial_vectors([0], 0.03), TORCH_DEFAULTS, tol=1e-12, lr_floor=1e-3,
                                  max_steps=5000)
    assert outcome.stop_reason == "lr_floor" and outcome.lr_final < 1e-3 and not outcome.converged


def test_cluster_vectors_dedups_within_distance():
    base = torch.zeros(3, 4)
    base[1, 0] = 5e-5      # within 1e-4 of vector 0
    base[2, 0] = 1.0       # far away
    assert cluster_vectors(base, 1e-4) == [0, 0, 2]
    anchors = torch.ones(1, 4)
    assert cluster_vectors(torch.ones(2, 4) + 1e-6, 1e-4, anchors) == [0, 0]


def test_gemma_effective_embedding_includes_scale(tiny_model_dir):
    gemma = load_model(str(tiny_model_dir("gemma3")), device="cpu")
    module = gemma.input_embeddings()
    effective = effective_embedding_matrix(module)                          # (V, D)
    torch.testing.assert_close(effective, module.weight * math.sqrt(HIDDEN), rtol=1e-6, atol=0)
    token = torch.tensor([[11]])
    by_ids = gemma.model(input_ids=token).logits[0, -1]                     # (V,)
    eff = EmbeddingMap(gemma, "effective")
    raw = EmbeddingMap(gemma, "raw")
    # The effective convention feeds a token's own input vector: same logits as input_ids.
    torch.testing.assert_close(eff.logits(eff.matrix[11][None])[0], by_ids, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(raw.logits(raw.matrix[11][None])[0], by_ids, atol=1e-3)
    torch.testing.assert_close(raw.matrix, module.weight, rtol=0, atol=0)


def test_untied_head_map(tiny_model_dir):
    llama = load_model(str(tiny_model_dir("llama", tied=False)), device="cpu")
    assert not llama.tied_head
    (outcome,) = iterate(EmbeddingMap(llama), [0], EmbeddingMap(llama).initial_vectors([0], 0.03), max_steps=300)
    assert outcome.converged, outcome.stop_detail


def test_iterate_reports_precision_floor_when_tol_is_below_rounding(qwen_model):
    fmap = EmbeddingMap(qwen_model)
    (outcome,) = iterate(fmap, [0], fmap.initial_vectors([0], 0.03), tol=1e-12, stall_window=40, max_steps=500)
    floor = float(outcome.vector.norm()) * torch.finfo(torch.float32).eps
    assert outcome.stop_reason == "precision_floor" and not outcome.converged
    assert outcome.best_residual < 16 * floor and "--tol" in outcome.stop_detail


def test_blocked_vocabulary_products_equal_plain_matmuls():
    from fpprov.vectors.kernels import row_blocks, times_rows_t, weights_times_rows

    torch.manual_seed(0)
    rows = torch.randn(65536, 8, dtype=torch.float64)  # (V, D)
    a = torch.randn(3, 8, dtype=torch.float64)         # (S, D)
    y = torch.softmax(torch.randn(3, 65536, dtype=torch.float64), -1)
    blocks = row_blocks(rows.shape[0])
    assert blocks > 1 and row_blocks(315) == 1
    assert torch.allclose(times_rows_t(a, rows, blocks), a @ rows.T, rtol=0, atol=1e-12)
    assert torch.allclose(weights_times_rows(y, rows, blocks), y @ rows, rtol=0, atol=1e-12)


def test_a_stall_window_of_one_or_two_compares_the_last_step_with_the_rest():
    from fpprov.vectors.iterate import stall_reason

    assert stall_reason([1.0], 1) is None                      # nothing earlier to compare with yet
    assert stall_reason([1.0, 0.9], 1) is not None             # not halved: a stall
    assert stall_reason([1.0, 0.4], 1) is None                 # halved: still converging
    assert stall_reason([1.0, 0.9], 2) is not None and stall_reason([1.0, 0.9], 0) is None


@pytest.mark.parametrize("blocks", [1, 8])
def test_vocabulary_products_of_any_batch_size_match_the_plain_products(blocks):
    """The blocked products (vector_map.row_blocks) are the plain products, for every batch size."""
    from fpprov.vectors.map import times_rows_t, weights_times_rows

    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(512, 16, generator=gen)                                  # (V, D)
    for s in range(1, 6):
        a = torch.randn(s, 16, generator=gen)                                  # (S, D)
        y = torch.softmax(torch.randn(s, 512, generator=gen), dim=-1)          # (S, V)
        head, mixed = times_rows_t(a, rows, blocks), weights_times_rows(y, rows, blocks)
        assert head.shape == (s, 512) and mixed.shape == (s, 16)
        torch.testing.assert_close(head, a @ rows.T, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mixed, y @ rows, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def scaled_gemma(tiny_model_dir):
    """A tiny Gemma 3 whose embedding module scales by sqrt(64) = 8, with peaked mixtures (init 0.3), so that
    iteration and gradient descent reach FPs in both spaces."""
    return load_model(str(tiny_model_dir("gemma3", init=0.3)), device="cpu")


@pytest.mark.parametrize("method", ["iterate", "gradient"])
def test_default_tolerances_are_met_in_both_spaces_of_a_scaled_embedding(scaled_gemma, method):
    from fpprov.vectors.map import REACHABLE_FACTOR, SEED_TOLERANCE

    raw, effective = EmbeddingMap(scaled_gemma, "raw"), EmbeddingMap(scaled_gemma, "effective")
    assert effective.coordinate_scale == pytest.approx(8 * raw.coordinate_scale, rel=1e-5)
    # The seed's 1e-6 in the raw space, scaled with the coordinate size (8x) in the effective one, each raised to
    # what float32 can reach there (here 1.1e-6 and 9.1e-6: this tiny model's raw coordinates are large).
    assert raw.default_tolerance == pytest.approx(max(SEED_TOLERANCE, raw.reachable_tolerance))
    assert effective.default_tolerance == pytest.approx(max(8 * SEED_TOLERANCE, effective.reachable_tolerance))
    assert effective.default_tolerance > 8 * raw.default_tolerance * 0.99
    assert effective.reachable_tolerance == pytest.approx(
        REACHABLE_FACTOR * effective.coordinate_scale * math.sqrt(HIDDEN) * torch.finfo(torch.float32).eps)
    for fmap in (raw, effective):
        outcomes = run_method(fmap, method, range(5), VectorOptions(max_steps=3000), init_std=0.3)
        converged = [o for o in outcomes if o.converged]
        assert len(converged) >= 2, (fmap.embedding, [o.stop_detail for o in outcomes])
        for outcome in converged:
            assert outcome.residual < fmap.default_tolerance
            alone = float((fmap(outcome.vector[None]) - outcome.vector[None]).norm())
            assert alone < fmap.default_tolerance   # the FP evaluated alone meets it too
        for outcome in outcomes:   # a seed that did not converge wandered far away: rounding did not stop it
            assert outcome.converged or outcome.best_residual > 100 * fmap.default_tolerance, outcome.stop_detail


def test_a_tolerance_below_the_dtypes_reach_warns_once_with_the_value_that_works(scaled_gemma):
    import warnings

    from fpprov.vectors.study import ToleranceWarning, tolerance

    fmap = EmbeddingMap(scaled_gemma, "effective")
    with pytest.warns(ToleranceWarning) as caught:
        assert tolerance(fmap, VectorOptions(tol=1e-8)) == 1e-8
    (warning,) = caught
    message = str(warning.message)
    assert "\n" not in message and f"--tol {fmap.default_tolerance:.2g}" in message and "--dtype float64" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tolerance(fmap, VectorOptions()) == fmap.default_tolerance          # the default: no warning
        assert tolerance(fmap, VectorOptions(tol=1e-4)) == 1e-4
