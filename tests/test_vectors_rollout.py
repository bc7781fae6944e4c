"""Rollout stability and token mixtures of vector FPs (issue 3, items 6 and 7)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import HAND_HIDDEN as HIDDEN
from tiny import TOKEN_A, TOKEN_B, TOKEN_K, hand_built_dir  # noqa: F401  (a fixture)

from fpprov.models import load_model
from fpprov.vectors.rollout import judge_rollout, rollout_distances, token_fp_flags, token_mixtures
from fpprov.vectors import EmbeddingMap, iterate


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Tiny models gain nothing from threads (see conftest.one_torch_thread)."""


@pytest.fixture(scope="module")
def two_token(hand_built_dir):
    return load_model(str(hand_built_dir("two_token", slope=2.0)), device="cpu")


def _e(i: int) -> torch.Tensor:
    return torch.eye(HIDDEN)[i]


def test_repelling_fp_is_unstable_and_attracting_fp_is_stable(two_token):
    fmap = EmbeddingMap(two_token)
    # x = e2 is an exact FP with slope 2; a found FP carries an error up to tol, here 1e-7 along e1.
    repelling = _e(1) + 1e-7 * _e(0)                                        # (D,)
    assert float((fmap(repelling[None])[0] - repelling).norm()) < 1e-6     # an FP by the tolerance
    (attracting,) = iterate(fmap, [0], (_e(1) + 0.5 * _e(0))[None], max_steps=500)
    assert attracting.converged and float(attracting.vector[0]) > 0.5       # s* of s = tanh(2 s / |x|)
    distances = rollout_distances(fmap, torch.stack([repelling, attracting.vector]), steps=100)  # (2, 100)
    unstable, stable = judge_rollout(distances, threshold=1e-3)
    assert distances[0, 0] < 1e-6 and unstable.dist_max > 0.5 and not unstable.stable  # the error compounds
    assert stable.dist_max < 1e-5 and stable.stable
    assert len(stable.dist_by_l) == 100


def test_feeding_x_does_not_compound(two_token):
    """With x at every position (and positions that do not matter here) the error stays at the residual."""
    fmap = EmbeddingMap(two_token)
    repelling = _e(1) + 1e-7 * _e(0)
    distances = rollout_distances(fmap, repelling[None], steps=30, feed="x")  # (1, 30)
    assert float(distances.max()) < 1e-6


def _recorded_rollout(fmap: EmbeddingMap, x: torch.Tensor, steps: int, monkeypatch) -> tuple[list, list, torch.Tensor]:
    """rollout_distances with the inputs fed at each step and the logits they gave recorded."""
    fed, got = [], []
    real = fmap.next_logits

    def spy(step_input, cache):
        logits, cache = real(step_input, cache)
        fed.append(step_input.clone())
        got.append(logits.clone())
        return logits, cache

    monkeypatch.setattr(fmap, "next_logits", spy)
    distances = rollout_distances(fmap, x, steps=steps, feed="output")      # (2, L)
    return fed, got, distances


@pytest.mark.parametrize("family, steps", [("llama", 6), ("gemma3", 20)])
def test_rollout_with_cache_matches_full_sequences(tiny_model_dir, family, steps, monkeypatch):
    """Each cached rollout step gives the logits of a fresh forward over the whole sequence fed so far (real
    positions; for Gemma 3 past its 16-token sliding window, so the cache's window handling is checked too),
    and not those of its last input at position 0: the positions advance. Teacher-forced (the same inputs
    for both), so float32 rounding does not compound along the chain."""
    loaded = load_model(str(tiny_model_dir(family)), device="cpu")
    fmap = EmbeddingMap(loaded)
    x = fmap.initial_vectors([0, 1], 0.03)                                  # (2, D)
    fed, got, distances = _recorded_rollout(fmap, x, steps, monkeypatch)
    assert len(fed) == steps and torch.equal(fed[0], x)
    for l in range(steps):
        with torch.no_grad():
            full = loaded.model(inputs_embeds=torch.stack(fed[:l + 1], dim=1)).logits[:, -1].float()  # (2, V)
            at_zero = loaded.model(inputs_embeds=fed[l][:, None]).logits[:, -1].float()             # (2, V)
        torch.testing.assert_close(got[l], full, rtol=1e-4, atol=1e-4)
        if l:
            assert float((got[l] - at_zero).abs().max()) > 1e-2, f"step {l + 1} ran at position 0"
        t = fmap.weights_to_vectors(torch.softmax(got[l], -1))              # (2, D)
        torch.testing.assert_close(distances[:, l], (t - x).norm(dim=-1).double(), rtol=1e-6, atol=1e-7)


def test_a_rollout_whose_positions_do_not_advance_fails(tiny_model_dir, monkeypatch):
    """A cache handed over under a name the forward does not take (the keyword transformers renamed) lands in
    its **kwargs unused, and every step would run at position 0: the rollout refuses instead of measuring that."""
    import fpprov.vectors.map as vector_map
    from fpprov.errors import FpprovError

    loaded = load_model(str(tiny_model_dir("llama")), device="cpu")
    fmap = EmbeddingMap(loaded)
    # (5.x still reads past_key_values from **kwargs; 4.x ignores cache there, as any forward ignores this one)
    monkeypatch.setattr(vector_map, "cache_keyword", lambda module: "kv_cache")
    with pytest.raises(FpprovError, match="positions would not advance"):
        rollout_distances(fmap, fmap.initial_vectors([0], 0.03), steps=3)


def test_the_cache_keyword_is_the_one_the_installed_forward_takes(tiny_model_dir):
    import inspect

    from fpprov.vectors.map import cache_keyword

    loaded = load_model(str(tiny_model_dir("gemma3")), device="cpu")
    fmap = EmbeddingMap(loaded)
    for module in (loaded.model, fmap._decoder):
        name = cache_keyword(module)
        assert name in inspect.signature(module.forward).parameters and name in ("cache", "past_key_values")


def test_judge_rollout_treats_non_finite_as_unbounded():
    verdicts = judge_rollout(torch.tensor([[1e-7, float("nan")], [1e-7, 2e-7]]), threshold=1e-3)
    assert verdicts[0].dist_max == math.inf and not verdicts[0].stable
    assert verdicts[1].stable and verdicts[1].dist_max == pytest.approx(2e-7)


def test_mixture_of_constant_head_fp(hand_built_dir):
    model = load_model(str(hand_built_dir("constant")), device="cpu")
    fmap = EmbeddingMap(model)
    e_k = model.input_embeddings().weight[TOKEN_K]
    (mixture,) = token_mixtures(fmap, e_k[None], top_k=5)
    weights = [t.weight for t in mixture.tokens]
    assert [t.rank for t in mixture.tokens] == [1, 2, 3, 4, 5]
    assert mixture.tokens[0].token_id == TOKEN_K and 0.999 < weights[0] < 1.0
    assert weights == sorted(weights, reverse=True)
    assert 0 < mixture.entropy < 0.05
    assert mixture.tokens[0].text == model.tokenizer.decode([TOKEN_K])
    assert mixture.tokens[0].raw_token == model.tokenizer.convert_ids_to_tokens(TOKEN_K)
    # Every input maps to k, so k is the only token FP: [k] -> k, [t] -> k for the others.
    assert [t.is_token_fp for t in mixture.tokens] == [True, False, False, False, False]


def test_token_fp_flags_match_greedy_decoding(two_token):
    """Tokens a, b: [a] -> x = e1 + e2, s = 1, favours a; [b] favours b; others (e2 ~ 0) are not FPs."""
    ids = [TOKEN_A, TOKEN_B, 0, 42]
    with torch.no_grad():
        argmax = two_token.model(input_ids=torch.tensor(ids)[:, None]).logits[:, -1].argmax(-1).tolist()
    assert token_fp_flags(two_token, ids) == [a == t for a, t in zip(argmax, ids)]
    assert token_fp_flags(two_token, ids)[:2] == [True, True]


def test_mixture_entropy_of_even_split(two_token):
    """x = e2 splits the mass evenly between a and b: entropy ln 2."""
    (mixture,) = token_mixtures(EmbeddingMap(two_token), _e(1)[None], top_k=3)
    assert mixture.entropy == pytest.approx(math.log(2), abs=1e-6)
    assert {mixture.tokens[0].token_id, mixture.tokens[1].token_id} == {TOKEN_A, TOKEN_B}
    assert mixture.tokens[0].weight == pytest.approx(0.5, abs=1e-6)


def test_token_fp_flags_prefer_the_stored_scan_verdict(two_token, tmp_path):
    """One definition of a token FP: where the model's complete primary scan covers a token, its stored verdict
    wins even against the judge (here a and b judge as FPs, 0 does not; the stored scan says the opposite)."""
    from fpprov.db.store import open_store

    ids = [TOKEN_A, TOKEN_B, 0, 42]
    assert token_fp_flags(two_token, ids)[:3] == [True, True, False]              # the scan's judge, no store
    with open_store(tmp_path / "s.duckdb") as store:
        store.con.execute(
            "INSERT INTO scans (scan_id, model, dtype, device, bos, id_start, id_stop, batch_size, tolerance, method,"
            " complete) VALUES (1, ?, 'float32', 'cpu', false, 0, ?, 8, 1e-4, 'forward-pruned', true)",
            [two_token.name, max(TOKEN_A, TOKEN_B)])                            # covers 0 .. b - 1, not b
        store.con.execute(
            "INSERT INTO token_fps (scan_id, model, token_id, category, prob, logit, margin, verified_float64)"
            " VALUES (1, ?, 0, 'normal', 0.5, 1.0, 0.1, true)", [two_token.name])
        flags = token_fp_flags(two_token, ids, store)
    stored_a = TOKEN_A < max(TOKEN_A, TOKEN_B)
    assert flags[ids.index(0)] is True                                           # stored FP, judge says no
    assert flags[ids.index(TOKEN_A if stored_a else TOKEN_B)] is False           # stored non-FP, judge says yes
    assert flags[ids.index(TOKEN_B if stored_a else TOKEN_A)] is True            # not covered: the judge
