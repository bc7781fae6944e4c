"""--verify calibrated: a float64 sample measures the screen's error; verdicts far beyond it are trusted, every
other one is decided in float64, and the verdicts still equal the float64 reference, planted near ties included."""

from __future__ import annotations

import pytest
import torch

from fpprov.scan.judge import Calibration, TokenJudge, calibration_sample, calibration_size
from fpprov.models import load_model
from fpprov.scan.run import ScanOptions, scan_vocabulary
from fpprov.db.store import open_store
from reference import float64_one_at_a_time
from fpprov.scan import hidden as forward
from tiny import FAMILIES


def _plant_near_tie(loaded, token_id: int, gap: float) -> None:
    """Move a competitor's head row so that its float64 logit sits ``gap`` below token_id's own (any layout)."""
    layout = forward.layer_layout(loaded.model)
    with torch.no_grad():
        h = forward.hidden_len1(loaded.model, torch.tensor([token_id]), layout, torch.float64)[0]  # (D,)
        w = loaded.model.get_output_embeddings().weight                                        # (V, D)
        rival = (token_id + 7) % w.shape[0]
        target = (h @ w[token_id].double()).item() - gap
        w64 = w[rival].double()
        w64 += (target - (h @ w64).item()) * h / (h @ h)
        w[rival] = w64.float()


def _scan(loaded, path, **opts):
    with open_store(path) as store:
        result = scan_vocabulary(loaded, store, ScanOptions(head_chunk=32, **opts))
        fps = {r[0] for r in store.query("SELECT token_id FROM token_fps WHERE scan_id = ?", [result.scan_id])}
        scan = store.query_dicts("SELECT * FROM scans WHERE scan_id = ?", [result.scan_id])[0]
        checked = {r[0]: r[1:] for r in store.query(
            "SELECT token_id, screen_is_fp, float64_is_fp FROM scan_rechecks WHERE scan_id = ?", [result.scan_id])}
    return result, fps, scan, checked


@pytest.mark.parametrize("family", FAMILIES)
def test_calibrated_verdicts_equal_the_float64_reference_with_planted_near_ties(family, tiny_model_dir, tmp_path,
                                                                                 one_torch_thread):
    loaded = load_model(str(tiny_model_dir(family, False)))
    ref0 = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    planted = [t for t, r in ref0.items() if r["is_fp"]][:6]
    for i, t in enumerate(planted):  # rivals just below and just above, under float32's resolution
        _plant_near_tie(loaded, t, gap=1e-7 if i % 2 else -1e-7)
    ref = float64_one_at_a_time(loaded.model, range(len(loaded.tokenizer)))
    result, fps, scan, checked = _scan(loaded, tmp_path / "cal.duckdb")
    assert scan["verify"] == "calibrated"
    assert fps == {t for t, r in ref.items() if r["is_fp"]}
    near = [t for t in planted if abs(ref[t]["margin"]) < 1e-5]   # a later plant may move an earlier tie
    assert len(near) >= 3
    for t in near:
        assert t in checked and checked[t][1] == ref[t]["is_fp"]
    # The error and factor that decided which verdicts were trusted are stored with the scan.
    assert scan["calibration_error"] > 0 and scan["safety_factor"] == ScanOptions().safety_factor
    judge = TokenJudge(loaded, ScanOptions(head_chunk=32))
    n_ids = len(loaded.tokenizer)
    cal = judge.calibrate(calibration_sample(0, n_ids, calibration_size(n_ids, ScanOptions().calibration_sample)))
    assert cal.error == pytest.approx(scan["calibration_error"], rel=1e-12)
    assert scan["calibration_threshold"] == pytest.approx(cal.threshold, rel=1e-12)
    assert (scan["calibration_measured"], scan["calibration_bound"]) == pytest.approx((cal.measured, cal.bound))


def test_the_factor_applies_to_the_measured_error_and_the_proven_bound_is_a_floor(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("olmo2", False)))
    cal = TokenJudge(loaded, ScanOptions(head_chunk=32)).calibrate(calibration_sample(0, len(loaded.tokenizer), 256))
    assert 0 < cal.measured <= cal.bound and cal.error == max(cal.measured, cal.bound)
    assert cal.threshold == max(cal.factor * cal.measured, cal.bound) < cal.factor * cal.error
    # a scan stored before the two were kept apart (only their max) trusts factor * error, as it did
    assert Calibration(cal.error, cal.factor).threshold == cal.factor * cal.error


def test_calibrated_rechecks_far_fewer_than_all_and_all_still_checks_every_fp(tiny_model_dir, tmp_path,
                                                                             one_torch_thread):
    loaded = load_model(str(tiny_model_dir("olmo2", False)))
    _, fps_all, scan_all, checked_all = _scan(loaded, tmp_path / "all.duckdb", verify="all")
    _, fps_cal, scan_cal, checked_cal = _scan(loaded, tmp_path / "cal.duckdb")
    assert fps_cal == fps_all and len(fps_all) > 40
    assert fps_all <= set(checked_all)
    assert scan_all["calibration_error"] is None and scan_all["safety_factor"] is None
    assert len(checked_cal) < len(checked_all) / 4


def test_only_margins_beyond_the_threshold_are_trusted_and_ties_never(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir("qwen3", False)))
    judge = TokenJudge(loaded, ScanOptions(head_chunk=32, tolerance=0.0))
    ids = torch.arange(len(loaded.tokenizer))                                       # (N,)
    verdicts = judge.judge(ids)
    threshold = judge.calibration.threshold
    assert threshold > 0
    assert torch.equal(verdicts.recheck, verdicts.gap.abs() <= threshold)
    # A huge factor trusts nothing: every verdict, ties included, is decided in float64.
    wary = TokenJudge(loaded, ScanOptions(head_chunk=32, tolerance=0.0, safety_factor=1e9)).judge(ids)
    assert wary.recheck.all()
    ref = float64_one_at_a_time(loaded.model, ids.tolist())
    assert verdicts.fp_positions() == wary.fp_positions() == [t for t in ids.tolist() if ref[t]["is_fp"]]


def test_a_resumed_scan_reuses_its_stored_calibration(tiny_model_dir, tmp_path, monkeypatch):
    loaded = load_model(str(tiny_model_dir("llama", False)))
    db = tmp_path / "resume.duckdb"
    with open_store(db) as store:
        first = scan_vocabulary(loaded, store, ScanOptions(head_chunk=32, limit=100, commit_every=50))
        store.con.execute("UPDATE scans SET complete = false, calibration_measured = 1e9 WHERE scan_id = ?",
                          [first.scan_id])
        store.con.execute("DELETE FROM scan_chunks WHERE scan_id = ? AND chunk_start = 50", [first.scan_id])
        store.con.execute("DELETE FROM token_fps WHERE scan_id = ? AND token_id >= 50", [first.scan_id])
        store.con.execute("DELETE FROM scan_rechecks WHERE scan_id = ? AND token_id >= 50", [first.scan_id])
    monkeypatch.setattr(TokenJudge, "calibrate", lambda self, ids: pytest.fail("a resumed scan recalibrated"))
    with open_store(db) as store:
        again = scan_vocabulary(loaded, store, ScanOptions(head_chunk=32, limit=100, commit_every=50))
        rechecked = {r[0] for r in store.query("SELECT token_id FROM scan_rechecks WHERE scan_id = ? AND token_id >= 50",
                                               [again.scan_id])}
    assert again.scan_id == first.scan_id
    assert rechecked == set(range(50, 100))   # the stored (here: huge) error trusts nothing


def test_a_small_slice_is_calibrated_on_a_share_of_its_ids():
    # One id in 32, at least 64, at most the option: a 2,048-id slice is not dominated by its calibration.
    assert calibration_size(2048, 256) == 64 and calibration_size(8192, 256) == 256
    assert calibration_size(262144, 256) == 256 and calibration_size(40, 256) == 40 and calibration_size(303, 100) == 64
