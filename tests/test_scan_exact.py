"""Batched, pruned scan verdicts equal a float64 one-token-at-a-time reference on four families."""

from __future__ import annotations

import functools

import pytest
import torch

from fpprov.scan import hidden as forward
from fpprov.models import load_model
from fpprov.scan.head import LMHead
from fpprov.scan.run import ScanOptions, TokenJudge, scan_vocabulary
from fpprov.db.store import open_store
from reference import float64_one_at_a_time
from tiny import FAMILIES, LAYOUT_FAMILIES


def _scan(model_dir, tmp_path, **opts):
    loaded = load_model(str(model_dir))
    with open_store(tmp_path / "scan.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions(**opts))
        rows = store.query_dicts("SELECT * FROM token_fps WHERE scan_id = ? ORDER BY token_id", [result.scan_id])
        scan = store.query_dicts("SELECT * FROM scans WHERE scan_id = ?", [result.scan_id])[0]
        rechecks = store.query_dicts("SELECT * FROM scan_rechecks WHERE scan_id = ?", [result.scan_id])
    return loaded, result, rows, scan, rechecks


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("family", FAMILIES)
def test_verdicts_equal_float64_reference(family, tied, tiny_model_dir, tmp_path):
    # head_chunk 32 on 315 rows: the likely-winner chunk and the early drops are exercised.
    loaded, result, rows, scan, rechecks = _scan(tiny_model_dir(family, tied), tmp_path, batch_size=64,
                                                 head_chunk=32, commit_every=100, verify="all")
    n_ids = len(loaded.tokenizer)
    ref = float64_one_at_a_time(loaded.model, range(n_ids))
    expected = {t for t, r in ref.items() if r["is_fp"]}
    assert 0 < len(expected) < n_ids, "fixture must have both FPs and non-FPs"
    assert {r["token_id"] for r in rows} == expected
    assert scan["method"] == "length1-pruned"
    assert scan["tokens_scanned"] == n_ids and scan["tokens_skipped"] == loaded.embedding_rows - n_ids
    assert scan["fp_count"] == len(expected) and scan["complete"]
    for row in rows:
        r = ref[row["token_id"]]
        assert row["runner_up_id"] == r["runner_up_id"]
        assert row["prob"] == pytest.approx(r["prob"], rel=1e-4, abs=1e-7) and row["prob"] <= 1.0
        # The other ids' mass too, also where it is far below float32's resolution of a probability near 1.
        assert 1 - row["prob"] == pytest.approx(1 - r["prob"], rel=1e-3, abs=1e-15)
        assert row["margin"] == pytest.approx(r["margin"], abs=1e-4)
        assert row["margin_float64"] == pytest.approx(r["margin"], abs=1e-9)
        assert row["verified_float64"] is True
        assert row["runner_up_logit"] == pytest.approx(row["logit"] - row["margin"], abs=1e-5)
    assert {r["token_id"] for r in rechecks} >= expected


def test_probability_near_one_keeps_the_mass_of_the_other_ids(tiny_model_dir, tmp_path):
    # Scaling an FP's head row lifts its own logit ~25 nats above the rest: p = 1 - O(1e-11), which a float32
    # log-sum-exp stores as exactly 1.0.
    loaded = load_model(str(tiny_model_dir("qwen3", False)))
    ref0 = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    token = max((t for t, r in ref0.items() if r["is_fp"]), key=lambda t: ref0[t]["margin"])
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.tensor([[token]])).logits[0, -1]      # (V,)
        own, lse_others = logits[token].item(), torch.cat([logits[:token], logits[token + 1:]]).logsumexp(0).item()
        assert own > 0
        head = loaded.model.get_output_embeddings().weight
        head[token] *= (lse_others + 25) / own
    ref = float64_one_at_a_time(loaded.model, [token])[token]
    assert 0 < 1 - ref["prob"] < 1e-9
    with open_store(tmp_path / "p1.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions(head_chunk=32))
        prob = store.query("SELECT prob FROM token_fps WHERE scan_id = ? AND token_id = ?", [result.scan_id, token])[0][0]
    assert prob < 1.0 and 1 - prob == pytest.approx(1 - ref["prob"], rel=1e-3)


def test_bos_prefix_uses_forward_and_matches_reference(tiny_model_dir, tmp_path):
    loaded, result, rows, scan, _ = _scan(tiny_model_dir("qwen3", False), tmp_path, bos=True, head_chunk=32)
    ref = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)), bos_id=loaded.tokenizer.bos_token_id)
    assert scan["bos"] is True and scan["method"] == "forward-pruned"
    assert {r["token_id"] for r in rows} == {t for t, r in ref.items() if r["is_fp"]}


def test_unknown_architecture_falls_back_to_plain_forward(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(forward, "PRE_NORM", set())
    monkeypatch.setattr("fpprov.scan.judge.layer_layout", forward.layer_layout)
    loaded, result, rows, scan, _ = _scan(tiny_model_dir("llama", True), tmp_path, head_chunk=32)
    ref = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    assert scan["method"] == "forward-pruned"
    assert {r["token_id"] for r in rows} == {t for t, r in ref.items() if r["is_fp"]}


def test_every_layout_the_shortcut_names_is_under_test(tiny_model_dir):
    tested = {load_model(str(tiny_model_dir(f, False))).model.config.model_type for f in FAMILIES + LAYOUT_FAMILIES}
    assert forward.PRE_NORM | forward.SANDWICH_NORM | forward.POST_NORM == tested


@pytest.mark.parametrize("family", FAMILIES + LAYOUT_FAMILIES)
def test_length1_shortcut_is_bit_identical_to_model_forward(family, tiny_model_dir):
    loaded = load_model(str(tiny_model_dir(family, False)))
    ids = torch.arange(len(loaded.tokenizer))
    layout = forward.layer_layout(loaded.model)
    with torch.no_grad():
        fast = forward.hidden_len1(loaded.model, ids, layout)
        full = forward.hidden_forward(loaded.model, ids[:, None])
    assert layout is not None
    assert torch.equal(fast, full)


@pytest.mark.parametrize("family", FAMILIES + LAYOUT_FAMILIES)
def test_float64_shortcut_with_grouped_o_proj_matches_float64_forward(family, tiny_model_dir):
    # Re-checks sum o_proj's weight over each query group (the tiny models have 4 query heads per 2 KV heads).
    loaded = load_model(str(tiny_model_dir(family, False)))
    assert loaded.model.config.num_attention_heads > loaded.model.config.num_key_value_heads
    ids = torch.arange(len(loaded.tokenizer))
    with torch.no_grad():
        fast = forward.hidden_len1(loaded.model, ids, forward.layer_layout(loaded.model), torch.float64)
        full = forward.hidden_forward(loaded.model, ids[:, None], torch.float64)
    assert fast.dtype == torch.float64
    assert torch.allclose(fast, full, rtol=1e-12, atol=1e-12 * full.abs().max().item())


def _plant_near_tie(loaded, token_id: int, gap: float) -> int:
    """Move a competitor's head row so that its float64 logit sits ``gap`` below token_id's own."""
    with torch.no_grad():
        h = forward.hidden_len1(loaded.model, torch.tensor([token_id]), "pre", torch.float64)[0]  # (D,)
        w = loaded.model.get_output_embeddings().weight
        rival = (token_id + 7) % w.shape[0]
        target = (h @ w[token_id].double()).item() - gap
        w64 = w[rival].double()
        w64 += (target - (h @ w64).item()) * h / (h @ h)
        w[rival] = w64.float()
    return rival


@pytest.mark.parametrize("lists", ["kept", "none"])
def test_near_ties_are_decided_in_float64(lists, tiny_model_dir, tmp_path, monkeypatch):
    # "none": competitor lists of one entry never cover the candidates, so every re-check takes the whole
    # float64 row; "kept": the screen's and the wide float32 lists decide which rows need float64 at all.
    calls = []
    if lists == "none":
        monkeypatch.setattr("fpprov.scan.judge.LMHead", functools.partial(LMHead, keep_top=1))
        monkeypatch.setattr(TokenJudge, "WIDE_TOP", 1)
    full_rows = LMHead.full_rows
    monkeypatch.setattr(LMHead, "full_rows", lambda self, h, ids, dtype: calls.append((len(ids), dtype))
                        or full_rows(self, h, ids, dtype))
    loaded = load_model(str(tiny_model_dir("llama", False)))
    ref0 = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    planted = [t for t, r in ref0.items() if r["is_fp"]][:8]
    for i, t in enumerate(planted):  # rivals just below and just above: below float32 resolution
        _plant_near_tie(loaded, t, gap=1e-7 if i % 2 else -1e-7)
    ref = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    with open_store(tmp_path / "tie.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions(head_chunk=32, verify="all"))
        fps = {r[0] for r in store.query("SELECT token_id FROM token_fps WHERE scan_id = ?", [result.scan_id])}
        checked = {r[0]: r for r in store.query(
            "SELECT token_id, screen_is_fp, float64_is_fp FROM scan_rechecks WHERE scan_id = ?", [result.scan_id])}
    assert fps == {t for t, r in ref.items() if r["is_fp"]}
    for t in planted:
        assert t in checked and checked[t][2] == ref[t]["is_fp"]
    # The float32 screen alone gets some of these wrong: the re-check is what makes the verdicts exact.
    assert any(checked[t][1] != checked[t][2] for t in planted)
    assert result.flipped > 0
    whole_rows64 = sum(n for n, dtype in calls if dtype == torch.float64)
    if lists == "none":
        assert whole_rows64 == len(checked)
    else:  # only rows with a crowd of exact ties (e.g. an all-zero hidden state) need the whole row
        assert whole_rows64 < len(checked) / 4


def test_verify_near_rechecks_only_near_ties_and_keeps_the_verdicts(tiny_model_dir, tmp_path):
    loaded, result, rows, scan, rechecks = _scan(tiny_model_dir("olmo2", False), tmp_path, verify="near",
                                                 tolerance=1e-2)
    ref = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    assert {r["token_id"] for r in rows} == {t for t, r in ref.items() if r["is_fp"]}
    assert scan["verify"] == "near"
    for row in rows:  # only FPs within the tolerance carry a float64 margin
        near = abs(row["margin"]) < 1e-2 * max(1.0, abs(row["logit"]))
        assert row["verified_float64"] == near and (row["margin_float64"] is not None) == near
    assert len(rechecks) < len(rows)


def test_exact_ties_are_not_fixed_points(tiny_model_dir, tmp_path):
    loaded = load_model(str(tiny_model_dir("qwen3", False)))
    ref0 = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    token = next(t for t, r in ref0.items() if r["is_fp"])
    with torch.no_grad():  # an identical head row gives an identical logit in every precision
        head = loaded.model.get_output_embeddings().weight
        head[len(loaded.tokenizer) + 1] = head[token]  # a padded row: never scanned itself, still competes
    with open_store(tmp_path / "tie.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions(head_chunk=32))
        fps = {r[0] for r in store.query("SELECT token_id FROM token_fps WHERE scan_id = ?", [result.scan_id])}
    assert token not in fps
    ref = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    assert fps == {t for t, r in ref.items() if r["is_fp"]}


def test_float64_scan_matches_reference(tiny_model_dir, tmp_path):
    model_dir = tiny_model_dir("gemma3", False)
    loaded = load_model(str(model_dir), dtype="float64")
    with open_store(tmp_path / "f64.duckdb") as store:
        result = scan_vocabulary(loaded, store, ScanOptions(head_chunk=64), dtype_name="float64")
        fps = {r[0] for r in store.query("SELECT token_id FROM token_fps WHERE scan_id = ?", [result.scan_id])}
    ref = float64_one_at_a_time(load_model(str(model_dir)).model, range(len(loaded.tokenizer)))
    assert fps == {t for t, r in ref.items() if r["is_fp"]}


def test_judge_returns_named_verdicts_that_agree_with_the_reference(tiny_model_dir):
    from dataclasses import fields

    from fpprov.scan.judge import Verdicts

    loaded = load_model(str(tiny_model_dir("qwen3", False)))
    ids = torch.arange(len(loaded.tokenizer))                                       # (N,)
    verdicts = TokenJudge(loaded, ScanOptions(head_chunk=32, tolerance=1e-2, verify="all")).judge(ids)
    assert isinstance(verdicts, Verdicts)
    assert all(getattr(verdicts, f.name).shape == ids.shape for f in fields(Verdicts))
    assert torch.equal(verdicts.ids, ids) and verdicts.recheck[verdicts.screen_is_fp].all()  # verify="all"
    kept, checked = ~verdicts.recheck, verdicts.recheck
    assert torch.equal(verdicts.is_fp[kept], verdicts.screen_is_fp[kept])
    assert verdicts.f64_margin[kept].isnan().all() and (verdicts.f64_best_id[kept] == -1).all()
    assert torch.equal(verdicts.is_fp[checked], verdicts.f64_margin[checked] > 0)
    ref = float64_one_at_a_time(loaded.model, ids.tolist())
    assert verdicts.fp_positions() == [t for t in ids.tolist() if ref[t]["is_fp"]]
    assert verdicts.recheck_positions() == torch.nonzero(checked).squeeze(-1).tolist()


def test_the_scans_row_is_written_like_every_other_row(tiny_model_dir, tmp_path, monkeypatch):
    from fpprov.db.store import Store
    from fpprov.versions import library_versions

    written, insert_rows = [], Store.insert_rows

    def recording(self, table, rows, **kwargs):
        written.append(table)
        return insert_rows(self, table, rows, **kwargs)

    monkeypatch.setattr(Store, "insert_rows", recording)
    loaded, result, _, scan, _ = _scan(tiny_model_dir("llama", True), tmp_path, limit=20, commit_every=10)
    assert written.count("scans") == 1 and written.index("scans") < written.index("scan_chunks")
    assert result.scan_id == scan["scan_id"] and result.tokens_scanned == 20 and scan["tokens_skipped"] == 0
    assert {k: scan[k] for k in library_versions()} == library_versions()
    assert (scan["dtype"], scan["device"], scan["commit_every"], scan["check_length"]) == \
        ("float32", str(loaded.device), 10, None)


def test_gpt_neox_scans_in_float32_with_its_float64_recheck(tmp_path):
    # GPT-NeoX (Pythia) names its token embedding embed_in; the layer-by-layer float64 re-check must find it.
    from tiny import build_neox_model

    model_dir = build_neox_model(tmp_path / "neox")
    loaded, result, rows, scan, rechecks = _scan(model_dir, tmp_path, verify="all")
    ref = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    expected = {t for t, r in ref.items() if r["is_fp"]}
    assert 0 < len(expected) < len(ref)
    assert {r["token_id"] for r in rows} == expected and scan["dtype"] == "float32"
