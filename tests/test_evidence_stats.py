"""Repetition statistics, per-token percentiles with BH q-values, source shares and enrichment (the numbers
the suspicious_tokens view's rules threshold; the flags themselves are tested on real databases)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpprov.evidence import (UNKNOWN_SOURCE, ControlCandidate, TokenValue, bootstrap_ci, compare_repetition,
                             draw_matched_controls, repetition_evidence, sample_baseline_positions,
                             self_repetition_rate, source_enrichment, source_shares, token_percentiles,
                             values_from_matches)


# ---- the measure -------------------------------------------------------------------------------------------

def test_self_repetition_rate_is_the_geometric_mean_continuation():
    # count(t)=1000, count(t x 2)=100, count(t x 3)=10: each step continues with chance 0.1.
    assert self_repetition_rate(1000, 10, 3) == pytest.approx(0.1)
    assert self_repetition_rate(1000, 100, 2) == pytest.approx(0.1)
    assert self_repetition_rate(1000, 0, 10) == 0.0
    assert math.isnan(self_repetition_rate(0, 0, 10))
    assert self_repetition_rate(5, 50, 2) == 1.0            # capped: a probability
    with pytest.raises(ValueError):
        self_repetition_rate(10, 1, 1)


# ---- FP vs control -----------------------------------------------------------------------------------------

def test_planted_fp_rates_give_auc_near_one_with_ci_excluding_half():
    rng = np.random.default_rng(0)
    fp = rng.beta(8, 2, 150)           # rates around 0.8
    ctrl = rng.beta(2, 8, 150)         # rates around 0.2
    r = compare_repetition(fp, ctrl, seed=1)
    assert r.auc > 0.95
    assert 0.5 < r.auc_ci[0] <= r.auc <= r.auc_ci[1] <= 1.0
    assert r.median_ratio_ci[0] > 1 and r.median_ratio == pytest.approx(np.median(fp) / np.median(ctrl))
    assert r.p_value < 1e-10
    assert (r.n_fp, r.n_control, r.reason) == (150, 150, None)


def test_null_set_ci_covers_half_and_is_reproducible():
    rng = np.random.default_rng(5)
    # Zero-inflated like real counts: many runs never occur, so many ties at 0.
    fp = np.where(rng.random(200) < 0.6, 0.0, rng.random(200))
    ctrl = np.where(rng.random(200) < 0.6, 0.0, rng.random(200))
    a = compare_repetition(fp, ctrl, seed=3)
    assert a.auc_ci[0] < 0.5 < a.auc_ci[1]
    assert a == compare_repetition(fp, ctrl, seed=3)
    assert a.auc_ci != compare_repetition(fp, ctrl, seed=4).auc_ci
    assert "control median is 0" in a.reason and math.isnan(a.median_ratio)


def test_auc_counts_ties_one_half():
    r = compare_repetition([0.0, 1.0], [0.0, 0.0], seed=0)
    # pairs: (0 vs 0) x2 -> 1/2 each, (1 vs 0) x2 -> 1 each: (1 + 2) / 4
    assert r.auc == pytest.approx(0.75)


@pytest.mark.parametrize("fp, ctrl, reason", [
    ([0.2, 0.2, 0.2], [], "no control value"),
    ([], [0.1, 0.3], "no FP value"),
    ([math.nan, math.nan], [0.1, 0.2], "no FP value"),
])
def test_empty_groups_give_nan_and_a_reason(fp, ctrl, reason):
    r = compare_repetition(fp, ctrl, seed=0)
    assert math.isnan(r.auc) and all(math.isnan(v) for v in r.auc_ci) and reason in r.reason


def test_all_ties_and_single_values():
    ties = compare_repetition([0.3] * 5, [0.3] * 7, seed=0)
    assert ties.auc == 0.5 and ties.auc_ci == (0.5, 0.5) and ties.median_ratio == 1.0
    one = compare_repetition([0.9], [0.1, 0.2, 0.3], seed=0)
    assert one.auc == 1.0 and all(math.isnan(v) for v in one.auc_ci) and "fewer than 2" in one.reason
    dropped = compare_repetition([0.9, math.nan, 0.8], [0.1, math.nan, 0.2], seed=0)
    assert (dropped.n_fp, dropped.n_control, dropped.n_dropped) == (2, 2, 2)


# ---- per-token percentiles and BH --------------------------------------------------------------------------

def test_percentile_and_p_value_formula():
    ctrls = [TokenValue(100 + i, v, 2) for i, v in enumerate([0.0, 0.1, 0.2, 0.3])]
    (tp,) = token_percentiles([TokenValue(1, 0.2, 2)], ctrls)
    assert tp.percentile == 62.5                      # mid-rank: 2 of 4 controls below, 1 tied counts one half
    assert tp.p_value == pytest.approx((1 + 2) / (1 + 4))   # 2 controls >= 0.2
    assert tp.percentile_ci[0] < 62.5 < tp.percentile_ci[1]
    assert tp.n_controls == 4 and tp.q_value == pytest.approx(tp.p_value)


def _wilson_reference(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson interval from its definition: the shares p with (share - p)^2 <= z^2 p (1 - p) / n."""
    from scipy.optimize import brentq
    share = successes / n
    gap = lambda p: (share - p) ** 2 - z * z * p * (1 - p) / n   # noqa: E731
    low = 0.0 if share == 0 else brentq(gap, 0.0, share)
    high = 1.0 if share == 1 else brentq(gap, share, 1.0)
    return low, high


@pytest.mark.parametrize("fp, controls", [
    (0.0, [0.0] * 9),                                   # tied with every control (the common case: no run)
    (0.0, [0.0] * 6 + [0.2, 0.4, 0.5]),                 # tied with some, below the others
    (0.3, [0.0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.7]),         # strict: no tie
    (0.9, [0.0, 0.1, 0.9, 0.9]),                        # above some, tied with the rest
])
def test_mid_rank_percentile_and_its_wilson_ci_against_a_reference(fp, controls):
    (tp,) = token_percentiles([TokenValue(1, fp, 0)], [TokenValue(100 + i, v, 0) for i, v in enumerate(controls)])
    n = len(controls)
    mid = sum(1.0 if c < fp else 0.5 if c == fp else 0.0 for c in controls)
    assert tp.percentile == pytest.approx(100 * mid / n)
    low, high = _wilson_reference(mid, n)
    assert tp.percentile_ci == pytest.approx((100 * low, 100 * high), abs=1e-6)
    assert tp.p_value == pytest.approx((1 + sum(c >= fp for c in controls)) / (1 + n))   # unchanged, conservative
    if all(c == fp for c in controls):
        assert tp.percentile == 50.0                    # a tie with every control reads 50, not 0


def test_percentiles_use_only_the_tokens_bin_and_mark_missing():
    ctrls = [TokenValue(10, 0.9, 1), TokenValue(11, 0.1, 2), TokenValue(12, math.nan, 2)]
    fps = [TokenValue(1, 0.5, 2), TokenValue(2, 0.5, 3), TokenValue(3, math.nan, 2)]
    a, b, c = token_percentiles(fps, ctrls)
    assert (a.n_controls, a.percentile, a.p_value) == (1, 100.0, 0.5)
    assert b.n_controls == 0 and math.isnan(b.p_value) and math.isnan(b.q_value) and "no control" in b.reason
    assert math.isnan(c.p_value) and math.isnan(c.q_value) and "no repetition rate" in c.reason
    assert a.q_value == pytest.approx(a.p_value)      # the BH family is the one FP with a p-value


def _binned(rng, n_tokens, n_bins, ctrl_dist, fp_dist):
    fps = [TokenValue(i, float(fp_dist(rng)), i % n_bins) for i in range(n_tokens)]
    ctrls = [TokenValue(10_000 + i, float(ctrl_dist(rng)), i % n_bins) for i in range(n_tokens)]
    return fps, ctrls


def test_null_tokens_flag_at_most_the_expected_share():
    rng = np.random.default_rng(2)
    dist = lambda r: 0.0 if r.random() < 0.3 else r.random()    # noqa: E731
    fps, ctrls = _binned(rng, 400, 4, dist, dist)
    tps = token_percentiles(fps, ctrls)
    ps = np.array([t.p_value for t in tps])
    assert np.all((ps > 0) & (ps <= 1))
    assert np.mean(ps <= 0.05) <= 0.05 + 0.03        # valid p-values: about 5% below 0.05 under the null
    # the suspicious_tokens view flags repetition at BH q <= 0.05: under the null that is at most 5% of tokens
    assert np.mean([t.q_value <= 0.05 for t in tps]) <= 0.05


def test_planted_tokens_reach_the_flag_threshold_with_effect_ci_and_n():
    rng = np.random.default_rng(3)
    fps, ctrls = _binned(rng, 300, 3, lambda r: r.uniform(0, 0.5), lambda r: r.uniform(0.6, 1))
    tps = token_percentiles(fps, ctrls)
    assert all(t.q_value <= 0.05 for t in tps)      # every planted token passes the view's repetition rule
    t = tps[0]
    low, high = t.percentile_ci
    assert t.percentile == 100.0 and t.n_controls == 100 and low < 100 <= high + 1e-9
    assert t.q_value > 1e-6                          # a stricter --threshold would not flag it


def test_values_from_matches_feeds_the_comparison():
    fps = [ControlCandidate(i, "normal", 100 + i) for i in range(20)]
    cands = [ControlCandidate(1000 + i, "normal", 100 + i) for i in range(40)]
    match = draw_matched_controls(fps, cands, k=1, seed=0)
    rates = {c.token_id: 0.9 for c in fps} | {c.token_id: 0.1 for c in cands}
    mv = values_from_matches(match, rates)
    assert [v.token_id for v in mv.fps] == list(range(20)) and len(mv.controls) == 20
    assert compare_repetition([v.value for v in mv.fps], [v.value for v in mv.controls], seed=0).auc == 1.0


def test_repetition_evidence_end_to_end_from_counts():
    """Counts -> rates -> matched controls -> AUC, per-token q-values, with the kept-out FPs counted."""
    rng = np.random.default_rng(8)
    n = 10
    fps = [ControlCandidate(i, "normal", int(rng.integers(100, 10_000))) for i in range(60)]
    fps.append(ControlCandidate(60, "normal", 0))
    cands = [ControlCandidate(1000 + i, "normal", int(rng.integers(100, 10_000))) for i in range(400)]
    # FPs' texts continue with chance ~0.7 per step, the controls' with ~0.2.
    def rate(c, low, high):
        return self_repetition_rate(c.unigram_count, int(c.unigram_count * rng.uniform(low, high) ** (n - 1)), n)
    rates = {c.token_id: rate(c, 0.5, 0.9) for c in fps if c.unigram_count}
    rates |= {c.token_id: rate(c, 0.1, 0.3) for c in cands}
    ev = repetition_evidence(draw_matched_controls(fps, cands, k=2, seed=1), rates, seed=1)
    assert ev.unmatched == {"zero_unigram_count": 1}
    assert ev.comparison.n_fp == 60 and ev.comparison.n_control == 120
    assert ev.comparison.auc_ci[0] > 0.9
    assert len(ev.tokens) == 60 and sum(t.q_value <= 0.05 for t in ev.tokens) >= 55


# ---- sources -----------------------------------------------------------------------------------------------

def test_source_shares_wilson():
    shares = source_shares(["a", "a", "b", None, "a"])
    assert [(s.source, s.k, s.n) for s in shares] == [("a", 3, 5), (UNKNOWN_SOURCE, 1, 5), ("b", 1, 5)]
    for s in shares:
        assert 0 <= s.ci_low < s.share < s.ci_high <= 1
    assert source_shares([]) == []


def _layout():
    """Three shards of documents (length, source); true token share of each source."""
    rng = np.random.default_rng(9)
    shards = []
    for _ in range(3):
        n_docs = int(rng.integers(50, 200))
        lengths = rng.integers(10, 500, n_docs)
        sources = rng.choice(["web", "code", "books", "wiki"], n_docs, p=[0.5, 0.2, 0.2, 0.1])
        shards.append((lengths, sources))
    shards.insert(1, (np.array([], dtype=int), np.array([], dtype=str)))     # an empty shard
    total = sum(int(l.sum()) for l, _ in shards)
    truth = {}
    for lengths, sources in shards:
        for length, src in zip(lengths, sources):
            truth[src] = truth.get(src, 0) + int(length) / total
    return shards, truth


def _resolve(shards, positions):
    ends = [np.cumsum(lengths) for lengths, _ in shards]
    out = []
    for p in positions:
        assert 0 <= p.rank < ends[p.shard][-1]
        out.append(str(shards[p.shard][1][int(np.searchsorted(ends[p.shard], p.rank, side="right"))]))
    return out


def test_baseline_positions_recover_true_source_shares_within_ci():
    shards, truth = _layout()
    sizes = [int(l.sum()) for l, _ in shards]
    covered = []
    for seed in range(10):
        positions = sample_baseline_positions(sizes, 2000, seed=seed)
        assert all(p.shard != 1 for p in positions)          # the empty shard is never drawn
        for s in source_shares(_resolve(shards, positions)):
            covered.append(s.ci_low <= truth[s.source] <= s.ci_high)
    assert np.mean(covered) >= 0.85                           # 95% intervals
    assert sample_baseline_positions(sizes, 50, seed=1) == sample_baseline_positions(sizes, 50, seed=1)
    assert sample_baseline_positions(sizes, 50, seed=1) != sample_baseline_positions(sizes, 50, seed=2)
    assert sample_baseline_positions(sizes, 0) == []
    with pytest.raises(ValueError):
        sample_baseline_positions([0, 0], 5)


def test_enrichment_planted_and_null():
    rng = np.random.default_rng(4)
    baseline = list(rng.choice(["web", "code", "wiki"], 1000, p=[0.8, 0.15, 0.05]))
    planted = list(rng.choice(["web", "code", "wiki"], 60, p=[0.3, 0.1, 0.6]))     # wiki 12x its share
    null = list(rng.choice(["web", "code", "wiki"], 60, p=[0.8, 0.15, 0.05]))
    en = {e.source: e for e in source_enrichment(planted, baseline, seed=0)}
    wiki = en["wiki"]
    assert wiki.enrichment == pytest.approx(wiki.share / wiki.baseline_share)
    assert wiki.ci_low >= 2 and wiki.ci_low <= wiki.enrichment <= wiki.ci_high
    assert en["web"].ci_high < 1
    for e in source_enrichment(null, baseline, seed=0):
        if e.k_docs >= 5:
            assert e.ci_low <= 1 <= e.ci_high
    assert source_enrichment(planted, baseline, seed=0) == source_enrichment(planted, baseline, seed=0)
    # the view's source rule (CI low >= 2 with >= 5 documents) picks wiki alone
    assert [e.source for e in en.values() if e.ci_low >= 2 and e.k_docs >= 5] == ["wiki"]
    assert wiki.n_docs == 60


def test_enrichment_edge_cases():
    gone = {e.source: e for e in source_enrichment(["rare", "rare", "web"], ["web"] * 50, seed=0)}
    assert math.isnan(gone["rare"].enrichment) and "not seen at any baseline position" in gone["rare"].reason
    assert gone["web"].enrichment == pytest.approx(1 / 3)
    # Seen once at the baseline: some resamples miss it, and the interval is unbounded above, not NaN.
    once = {e.source: e for e in source_enrichment(["rare"] * 5 + ["web"] * 5, ["rare"] + ["web"] * 99, seed=0)}
    assert once["rare"].ci_high == math.inf and math.isfinite(once["rare"].ci_low)
    assert all(math.isnan(e.enrichment) for e in source_enrichment([], ["web"], seed=0))
    assert source_enrichment([], [], seed=0) == []


def test_joint_enrichment_bootstrap_matches_one_source_at_a_time():
    rng = np.random.default_rng(6)
    docs = list(rng.choice(["a", "b", "c"], 80, p=[0.5, 0.3, 0.2]))
    base = list(rng.choice(["a", "b", "c"], 300, p=[0.3, 0.3, 0.4]))

    def ratio(x, y, axis=-1):
        return np.mean(x, axis=axis) / np.mean(y, axis=axis)
    for e in source_enrichment(docs, base, seed=5, n_resamples=500):
        x = (np.array(docs) == e.source).astype(float)
        y = (np.array(base) == e.source).astype(float)
        assert (e.ci_low, e.ci_high) == pytest.approx(bootstrap_ci(x, y, ratio, seed=5, n_resamples=500))


def test_small_bins_cannot_reach_significance():
    ctrls = [TokenValue(100 + i, 0.0, 0) for i in range(10)]
    (tp,) = token_percentiles([TokenValue(1, 1.0, 0)], ctrls)
    assert tp.percentile == 100.0 and tp.p_value == pytest.approx(1 / 11)
    assert tp.q_value > 0.05
