"""Provenance with matched controls, end to end on local indexes of planted and null corpora (issue 9 item 9)."""

from __future__ import annotations

import evidence_corpus
import pytest

from fpprov.corpus.index_build import build_index
from fpprov.provenance import ProvenanceOptions, run_provenance
from fpprov.db.store import open_store

# Three controls per FP in wide frequency bins: a token's empirical p-value is at least 1 / (1 + controls in
# its bin), so the per-token test needs bins of 20 controls and more to reach q <= 0.05 at all.
OPTIONS = dict(ladder=(evidence_corpus.RUN,), docs=10, controls=3, bin_width=1.0, baseline_positions=400, seed=3)


FEW_REQUESTS = dict(docs=2, baseline_positions=50)   # an HTTP round trip each: keep the API tests short


def _run(db, index, **overrides):
    with open_store(db) as store:
        return run_provenance(store, backend="local", index_dirs=[index],
                              options=ProvenanceOptions(**{**OPTIONS, **overrides}))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    db, index, fps = evidence_corpus.build(tmp_path_factory.mktemp("planted"), planted=True)
    return db, index, fps, _run(db, index)


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    db, index, fps = evidence_corpus.build(tmp_path_factory.mktemp("null"), planted=False, seed=5)
    return db, index, fps, _run(db, index)


def test_planted_fps_repeat_more_than_their_controls(planted):
    db, _, fps, summary = planted
    with open_store(db, read_only=True) as store:
        row = store.query_dicts("FROM fp_enrichment")[0]
        matched = store.query("SELECT count(DISTINCT fp_token_id), count(*) FROM control_matches")[0]
        roles = dict(store.query("SELECT role, count(DISTINCT token_id) FROM provenance GROUP BY role"))
    assert row["auc"] > 0.95 and row["auc_low"] > 0.8, row
    assert row["n_fp"] == matched[0] and row["n_control"] <= matched[1]
    assert roles["fp"] == len(fps) and roles["control"] == row["n_control"]
    assert summary.evidence and summary.evidence[0].n_fp == row["n_fp"]


def test_flagged_set_is_the_planted_tokens(planted):
    db, _, fps, _ = planted
    with open_store(db, read_only=True) as store:
        flagged = {r[0] for r in store.query("SELECT token_id FROM suspicious_tokens WHERE rule = 'repetition_enriched'")}
        reasons = [r[0] for r in store.query("SELECT reason FROM suspicious_tokens LIMIT 3")]
        kept_out = dict(store.query("SELECT token_id, reason FROM evidence_exclusions WHERE role = 'fp'"))
    # Runs add copies, so an FP can outgrow every control's frequency bin: it is kept out, with the reason.
    assert set(kept_out.values()) <= {"no_control_in_bin"} and len(kept_out) <= 3
    assert flagged == fps - set(kept_out)
    assert all("matched controls" in r and "q =" in r for r in reasons if "repetition" in r)


def test_planted_runs_enrich_their_source(planted):
    db, _, _, _ = planted
    with open_store(db, read_only=True) as store:
        pooled = {r["source"]: r for r in store.query_dicts(
            "FROM source_enrichment WHERE scope = 'pooled' AND role = 'fp'")}
        base = dict(store.query("SELECT source, share FROM corpus_baselines"))
        flags = store.query("SELECT count(*) FROM suspicious_tokens WHERE rule = 'source_enriched'")[0][0]
    assert pooled["forum"]["enrichment_low"] > 2 and base["forum"] < 0.3
    assert flags > 0


def test_null_corpus_auc_covers_one_half(null):
    db, _, fps, _ = null
    with open_store(db, read_only=True) as store:
        row = store.query_dicts("FROM fp_enrichment")[0]
        flagged = store.query("SELECT count(*) FROM token_evidence WHERE role = 'fp' AND q_value <= 0.05")[0][0]
    assert row["auc_low"] <= 0.5 <= row["auc_high"], row
    assert flagged <= max(1, 0.05 * len(fps))


def test_rerun_sends_nothing(planted):
    db, index, _, first = planted
    with open_store(db, read_only=True) as store:
        before = store.query("SELECT count(*) FROM ngram_counts")[0][0], store.query_dicts("FROM fp_enrichment")
    again = _run(db, index)
    assert again.requests == 0 and again.sent == 0
    assert again.baseline_fetched == 0 and again.docs_fetched == 0
    with open_store(db, read_only=True) as store:
        assert (store.query("SELECT count(*) FROM ngram_counts")[0][0], store.query_dicts("FROM fp_enrichment")) == before


def test_a_failed_control_count_is_never_a_zero(tmp_path):
    """Against the API test server: the n-fold count of some controls fails; they are kept out with the reason,
    never compared as 0, and the next run (server healthy) completes the comparison."""
    from infinigram_server import serve
    from helpers import FAST_HTTP

    db, index, _ = evidence_corpus.build(tmp_path, planted=True, n_words=120, n_fps=20)
    with open_store(db) as store:
        words = evidence_corpus.vocabulary(120, 0)
        with serve([index]) as srv:
            # the count of a run of 12 copies fails for the words 0-39 (FPs and candidates alike)
            for word in words[:40]:
                srv.query_faults[word * evidence_corpus.RUN] = "500"
            run_provenance(store, backend="api", index="test_index", api_url=srv.url, http=FAST_HTTP,
                           options=ProvenanceOptions(**{**OPTIONS, **FEW_REQUESTS, "give_up_after": 0}))
            failed = {r[0] for r in store.query("SELECT token_id FROM evidence_exclusions WHERE reason = 'count_failed'")}
            compared = {r[0] for r in store.query("SELECT token_id FROM token_evidence")}
            zero_rows = store.query("SELECT count(*) FROM token_evidence WHERE token_id < 40")[0][0]
            assert failed and not failed & compared and zero_rows == 0
            srv.query_faults.clear()
            run_provenance(store, backend="api", index="test_index", api_url=srv.url, http=FAST_HTTP,
                           options=ProvenanceOptions(**{**OPTIONS, **FEW_REQUESTS}))
        healed = store.query("SELECT count(*) FROM evidence_exclusions WHERE reason = 'count_failed'")[0][0]
        assert healed == 0 and failed & {r[0] for r in store.query("SELECT token_id FROM token_evidence")}


def test_attribution_ranks_the_planted_index_first(tmp_path):
    db, planted_index, fps = evidence_corpus.build(tmp_path, planted=True)
    words = evidence_corpus.vocabulary(400, 0)
    evidence_corpus.write_corpus(tmp_path / "null-corpus", words, fps, planted=False, seed=9)
    build_index(tmp_path / "null-corpus", tmp_path / "null-index")
    with open_store(db) as store:
        summary = run_provenance(store, backend="local", index_dirs=[tmp_path / "null-index", planted_index],
                                 options=ProvenanceOptions(**{**OPTIONS, **FEW_REQUESTS}))
        ranked = store.query("SELECT index_name, rank, auc, auc_low, auc_high FROM corpus_attribution ORDER BY rank")
    assert len(summary.indexes) == 2 and len(ranked) == 2
    assert ranked[0][0].startswith("index-toy@") and ranked[1][0].startswith("null-index@")
    assert ranked[0][3] > ranked[1][4]          # the CIs do not overlap
