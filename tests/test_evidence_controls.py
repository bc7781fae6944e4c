"""Matched controls: same frequency bin and category, reproducible from the seed, reasons for the unmatched."""

from __future__ import annotations

import random

import pytest

from fpprov.evidence import (NO_CONTROL_IN_BIN, ZERO_UNIGRAM_COUNT, ControlCandidate, draw_matched_controls,
                             frequency_bin)


def _vocab(n: int = 2000, seed: int = 7) -> list[ControlCandidate]:
    rnd = random.Random(seed)
    cats = ["normal"] * 8 + ["byte_fragment", "unreachable"]
    return [ControlCandidate(i, rnd.choice(cats), int(10 ** rnd.uniform(0, 7)) - 1, f"t{i}") for i in range(n)]


def _split(vocab, every=20):
    fps = [c for c in vocab if c.token_id % every == 0]
    return fps, vocab


def test_frequency_bin_edges():
    assert frequency_bin(0) == 0
    assert frequency_bin(1) == 0              # log10(2) = 0.30 < 0.5
    assert frequency_bin(2) == 0              # log10(3) = 0.48
    assert frequency_bin(3) == 1              # log10(4) = 0.60
    assert frequency_bin(9) == 2              # log10(10) = 1 exactly, not 1.9999 rounded down
    assert frequency_bin(99, bin_width=1.0) == 2
    with pytest.raises(ValueError):
        frequency_bin(-1)


def test_controls_share_bin_and_category_and_are_not_fps():
    fps, cands = _split(_vocab())
    res = draw_matched_controls(fps, cands, k=2, seed=3)
    by_id = {c.token_id: c for c in cands}
    fp_ids = {f.token_id for f in fps}
    assert res.matches
    for m in res.matches:
        fp, ctrl = by_id[m.fp_token_id], by_id[m.control_token_id]
        assert m.control_token_id not in fp_ids
        assert ctrl.category == fp.category == m.category
        assert frequency_bin(ctrl.unigram_count) == frequency_bin(fp.unigram_count) == m.bin
        assert ctrl.unigram_count > 0
    for fp_id in res.matched_fp_ids:
        got = res.controls_for(fp_id)
        assert len(got) == len(set(got)) and 1 <= len(got) <= 2
    # Every FP is either matched or kept out with a reason, never both.
    kept_out = {u.token_id for u in res.unmatched}
    assert kept_out.isdisjoint(res.matched_fp_ids)
    assert kept_out | set(res.matched_fp_ids) == fp_ids


def test_controls_reproducible_with_seed_and_input_order_and_different_with_another_seed():
    fps, cands = _split(_vocab())
    a = draw_matched_controls(fps, cands, k=1, seed=11)
    shuffled = list(cands)
    random.Random(0).shuffle(shuffled)
    b = draw_matched_controls(list(reversed(fps)), shuffled, k=1, seed=11)
    c = draw_matched_controls(fps, cands, k=1, seed=12)
    assert a.matches == b.matches and a.unmatched == b.unmatched
    assert [m.control_token_id for m in a.matches] != [m.control_token_id for m in c.matches]
    assert a.matched_fp_ids == c.matched_fp_ids      # which FPs match depends on the data, not the seed


def test_controls_distinct_across_fps_until_the_pool_is_used_up():
    fps = [ControlCandidate(i, "normal", 50) for i in range(4)]
    cands = [ControlCandidate(100 + i, "normal", 40 + i) for i in range(10)]
    res = draw_matched_controls(fps, cands, k=2, seed=0)
    used = [m.control_token_id for m in res.matches]
    assert len(used) == 8 and len(set(used)) == 8
    # Six FPs x 2 draws = 12 > 10 candidates: reuse starts only after every candidate served once.
    fps6 = [ControlCandidate(i, "normal", 50) for i in range(6)]
    used6 = [m.control_token_id for m in draw_matched_controls(fps6, cands, k=2, seed=0).matches]
    assert set(used6) == {c.token_id for c in cands}


def test_fewer_candidates_than_k_gives_all_of_them():
    fps = [ControlCandidate(1, "normal", 1000)]
    cands = [ControlCandidate(2, "normal", 1200), ControlCandidate(3, "normal", 1500),
             ControlCandidate(4, "byte_fragment", 1000)]
    res = draw_matched_controls(fps, cands, k=5, seed=0)
    assert sorted(res.controls_for(1)) == [2, 3]
    assert [m.draw for m in res.matches] == [0, 1]


def test_unmatched_reasons():
    fps = [ControlCandidate(1, "normal", 0),            # never occurs
           ControlCandidate(2, "normal", 10 ** 6),       # no candidate that frequent
           ControlCandidate(3, "byte_fragment", 5),      # no candidate of that category
           ControlCandidate(4, "normal", 5)]
    cands = [ControlCandidate(10, "normal", 6), ControlCandidate(11, "normal", 0),
             ControlCandidate(12, "byte_fragment", 10 ** 6), ControlCandidate(4, "normal", 5)]
    res = draw_matched_controls(fps, cands, k=1, seed=0)
    reasons = {u.token_id: u.reason for u in res.unmatched}
    assert reasons == {1: ZERO_UNIGRAM_COUNT, 2: NO_CONTROL_IN_BIN, 3: NO_CONTROL_IN_BIN}
    assert res.controls_for(4) == [10]                  # not the zero-count candidate 11, not itself
    assert res.unmatched_counts() == {ZERO_UNIGRAM_COUNT: 1, NO_CONTROL_IN_BIN: 2}
    assert {u.token_id: u.bin for u in res.unmatched}[1] is None


def test_bad_k_and_empty_inputs():
    with pytest.raises(ValueError):
        draw_matched_controls([], [], k=0)
    res = draw_matched_controls([], [ControlCandidate(1, "normal", 3)], k=1)
    assert res.matches == [] and res.unmatched == []
    res = draw_matched_controls([ControlCandidate(1, "normal", 3)], [], k=1)
    assert [u.reason for u in res.unmatched] == [NO_CONTROL_IN_BIN]
