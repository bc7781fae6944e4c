"""Exact at every precision: low-precision scans climb a ladder to the float64 verdicts of the weights as
loaded, rounding bounds stay finite and positive at any width, and the head's extras (bias, logit scaling,
soft-capping) are the model's own or the model is refused."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from fpprov.db import open_store
from fpprov.errors import FpprovError
from fpprov.models import load_model
from fpprov.models.head_extras import HeadExtras
from fpprov.scan import ScanOptions, scan_vocabulary
from fpprov.scan.judge import FLOAT32, FLOAT64, SCREEN, TokenJudge
from reference import float64_one_at_a_time
from tiny import FAMILIES, HEAD_EXTRA_FAMILIES


def _scan_rows(loaded, tmp_path, **opts) -> tuple[list[dict], list[dict]]:
    with open_store(tmp_path / "scan.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions(batch_size=64, head_chunk=32, commit_every=100, **opts))
        rows = store.query_dicts("SELECT * FROM token_fps WHERE scan_id = ? ORDER BY token_id", [result.scan_id])
        rechecks = store.query_dicts("SELECT * FROM scan_rechecks WHERE scan_id = ?", [result.scan_id])
    return rows, rechecks


_REFERENCES: dict[tuple, dict[int, dict]] = {}


def _expected(loaded) -> tuple[dict[int, dict], set[int]]:
    """float64 one-at-a-time verdicts of the weights as loaded (a bfloat16 model's weights, upcast); computed
    once per model directory and dtype."""
    key = (loaded.spec.location, loaded.dtype)
    if key not in _REFERENCES:
        _REFERENCES[key] = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    ref = _REFERENCES[key]
    return ref, {t for t, r in ref.items() if r["is_fp"]}


@pytest.mark.parametrize("dtype, verify", [("bfloat16", "calibrated"), ("bfloat16", "all"), ("bfloat16", "near"),
                                           ("float16", "calibrated"), ("float16", "near")])
@pytest.mark.parametrize("family", FAMILIES)
def test_low_precision_scans_give_the_float64_verdicts(family, dtype, verify, tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir(family, False)), dtype=dtype)
    ref, expected = _expected(loaded)
    assert 0 < len(expected) < len(ref)
    rows, _ = _scan_rows(loaded, tmp_path, verify=verify)
    assert {r["token_id"] for r in rows} == expected
    for row in rows:
        assert math.isfinite(row["margin"]) and row["margin"] > 0
        assert row["margin_float64"] is None or math.isfinite(row["margin_float64"])
        assert 0 < row["prob"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("dtype, width", [("bfloat16", 640), ("float16", 2048)])
def test_wide_models_where_the_textbook_bound_breaks_down(dtype, width, tiny_model_dir, tmp_path):
    # D u >= 1 here for the low-precision unit roundoff (bfloat16 from D = 256, float16 from 2048): a bound built
    # on it would be negative and call every re-checked row an FP.
    loaded = load_model(str(tiny_model_dir("llama", False, hidden_size=width, init=0.02)), dtype=dtype)
    ref, expected = _expected(loaded)
    assert 0 < len(expected) < len(ref)
    rows, _ = _scan_rows(loaded, tmp_path, verify="all")
    assert {r["token_id"] for r in rows} == expected
    assert all(math.isfinite(r["margin"]) for r in rows)
    assert all(r["margin_float64"] is None or math.isfinite(r["margin_float64"]) for r in rows)


def test_the_screen_bound_is_positive_and_finite_in_every_dtype(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("llama", False, hidden_size=640, init=0.02)), dtype="bfloat16")
    judge = TokenJudge(loaded, ScanOptions())
    ids = torch.arange(32)
    h64 = judge.hidden(ids, torch.float64)                                           # (B, D)
    for dtype in (None, torch.float32, torch.float64):
        bound = judge.head.error_bound(judge.hidden(ids, dtype), h64)                 # (B,)
        assert bool(torch.isfinite(bound).all()) and bool((bound > 0).all())
    # The bfloat16 screen's bound covers its own measured error, and the float32 rung's is far below it.
    low, f32 = judge.calibrate(ids), judge.calibrate(ids, torch.float32)
    assert 0 <= low.measured <= low.bound and f32.bound < low.bound


def test_a_low_precision_scan_says_which_rung_decided_each_verdict(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("qwen3", False)), dtype="bfloat16")
    judge = TokenJudge(loaded, ScanOptions(verify="calibrated"))
    ids = torch.arange(len(loaded.tokenizer))
    verdicts = judge.judge(ids)
    ref, expected = _expected(loaded)
    assert set(verdicts.ids[verdicts.is_fp].tolist()) == expected
    rungs = set(verdicts.decided_by.tolist())
    assert SCREEN in rungs and (FLOAT32 in rungs or FLOAT64 in rungs)
    # Every verdict the screen kept has a margin beyond its threshold; float64 ones were re-checked.
    kept = verdicts.decided_by == SCREEN
    assert bool((verdicts.gap[kept].abs() > judge.calibration.threshold).all())
    assert bool((verdicts.recheck == (verdicts.decided_by == FLOAT64)).all())


@pytest.mark.parametrize("family", HEAD_EXTRA_FAMILIES)
def test_scaled_logits_give_the_models_own_probabilities(family, tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir(family, False)))
    extras = HeadExtras.of(loaded.model)
    assert extras.scale is not None and extras.scale != 1
    ref, expected = _expected(loaded)
    rows, _ = _scan_rows(loaded, tmp_path, verify="all")
    assert {r["token_id"] for r in rows} == expected and rows
    for row in rows:
        assert row["prob"] == pytest.approx(ref[row["token_id"]]["prob"], rel=1e-4, abs=1e-7)
        assert row["margin_float64"] == pytest.approx(ref[row["token_id"]]["margin"], abs=1e-9)


def test_a_scaling_that_fpprov_does_not_know_is_refused(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("llama", False)))
    loaded.model.config.logits_scaling = 2.0      # a Llama-type model naming an extra fpprov cannot interpret
    with pytest.raises(FpprovError, match="scales its logits"):
        TokenJudge(loaded, ScanOptions())


def test_an_undeclared_change_to_the_logits_is_refused(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("llama", False)))
    forward = loaded.model.forward

    def multiplied(*args, **kwargs):   # as HyperCLOVA X multiplies by a factor Granite divides by
        out = forward(*args, **kwargs)
        out.logits = out.logits * 3.0
        return out

    loaded.model.forward = multiplied
    with pytest.raises(FpprovError, match="does not reproduce"):
        TokenJudge(loaded, ScanOptions())


def test_a_forward_that_bypasses_its_output_layer_is_refused(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("llama", False)))
    model = loaded.model

    def bypassing(input_ids, **kwargs):   # logits from the head's weight, never through the head module
        hidden = model.model(input_ids=input_ids, use_cache=False).last_hidden_state         # (B, L, D)
        return SimpleNamespace(logits=hidden @ model.lm_head.weight.T)                       # (B, L, V)

    model.forward = bypassing
    with pytest.raises(FpprovError, match="output layer"):
        TokenJudge(loaded, ScanOptions())


def test_each_stored_verdict_says_what_it_guarantees(tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir("qwen3", False)), dtype="bfloat16")
    rows, _ = _scan_rows(loaded, tmp_path, verify="calibrated")
    with open_store(tmp_path / "scan.duckdb") as store:
        guarantees = store.query_dicts("SELECT * FROM fp_guarantees ORDER BY token_id")
    assert [g["token_id"] for g in guarantees] == [r["token_id"] for r in rows]
    for row, g in zip(rows, guarantees):
        assert row["decided_in"] in ("bfloat16", "float32", "float64")
        assert (row["decided_in"] == "float64") == row["verified_float64"] == (g["guarantee"] == "float64")
        assert g["guarantee"] in ("float64", "calibrated") and g["dtype"] == "bfloat16"
    assert guarantees and "calibrated" in {g["guarantee"] for g in guarantees}


@pytest.mark.parametrize("family", HEAD_EXTRA_FAMILIES + ("gemma2",))
def test_the_vector_map_applies_the_same_extras_as_the_model(family, tiny_model_dir):
    from fpprov.vectors.map import EmbeddingMap

    loaded = load_model(str(tiny_model_dir(family, True)))
    fmap = EmbeddingMap(loaded, "effective")
    assert fmap._extras == HeadExtras.of(loaded.model)       # the fast path, with this model's extras
    x = fmap.initial_vectors([0, 1, 2], 0.5)                                          # (S, D)
    with torch.no_grad():
        want = loaded.model(inputs_embeds=x[:, None, :], use_cache=False).logits[:, -1, :]  # (S, V)
    assert torch.allclose(fmap.logits(x), want, rtol=0, atol=1e-5 * (1 + float(want.abs().max())))
