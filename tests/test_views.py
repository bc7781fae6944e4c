"""Semantics of the views (fpprov/db/views.sql) on small hand-built databases."""

from __future__ import annotations

import math

import pytest

from fpprov.db.store import open_store

SCAN_DEFAULTS = dict(dtype="float32", device="cpu", batch_size=256, tolerance=1e-4, method="length1-pruned")


def add_model(store, name, family, variant):
    store.insert_rows("models", [{"name": name, "source_kind": "hub", "family": family, "variant": variant}])


def add_scan(store, scan_id, model, fps, *, bos=False, complete=True, id_range=(0, 1000), started="2026-01-01"):
    """Insert one scan of `model` whose FPs are (token_id, raw_token, norm_text, prob) tuples."""
    store.insert_rows("scans", [{
        **SCAN_DEFAULTS, "scan_id": scan_id, "model": model, "bos": bos, "complete": complete,
        "id_start": id_range[0], "id_stop": id_range[1], "fp_count": len(fps),
        "tokens_scanned": id_range[1] - id_range[0], "started_at": started,
    }])
    store.insert_rows("token_fps", [{
        "scan_id": scan_id, "model": model, "token_id": tid, "raw_token": raw, "text": norm, "norm_text": norm,
        "category": "normal", "prob": prob, "logit": 10.0, "margin": 1.0, "verified_float64": True,
    } for tid, raw, norm, prob in fps])


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "views.duckdb") as s:
        yield s


def test_primary_scan_prefers_complete_then_no_bos_then_widest(store):
    add_model(store, "m", "fam", "base")
    add_scan(store, 1, "m", [(1, "a", "a", 0.5)], complete=False, id_range=(0, 5000))
    add_scan(store, 2, "m", [(1, "a", "a", 0.5)], bos=True, id_range=(0, 5000))
    add_scan(store, 3, "m", [(1, "a", "a", 0.5)], id_range=(0, 100))
    add_scan(store, 4, "m", [(1, "a", "a", 0.5)], id_range=(0, 200), started="2025-01-01")
    assert store.query("SELECT scan_id, n_scans FROM primary_scans") == [(4, 4)]
    # Without any complete no-BOS scan, the complete BOS scan beats the interrupted one.
    store.con.execute("UPDATE scans SET complete = false WHERE scan_id IN (3, 4)")
    assert store.query("SELECT scan_id FROM primary_scans") == [(2,)]


def test_shared_fps_matches_text_across_tokenizers_and_families(store):
    add_model(store, "olmo2-1b", "olmo2", "base")
    add_model(store, "olmo2-1b-inst", "olmo2", "inst")
    add_model(store, "qwen3-0.6b", "qwen3", "base")
    # ' blah' has a different id and vocabulary spelling in each tokenizer; it must still match.
    add_scan(store, 1, "olmo2-1b", [(10, "Ġblah", " blah", 0.9), (11, "Á", "Á", 0.99), (12, "<0xC3>", "\ufffd", 0.2),
                                    (13, "solo", "solo", 0.3)])
    add_scan(store, 2, "olmo2-1b-inst", [(10, "Ġblah", " blah", 0.7), (11, "Á", "Á", 0.98), (12, "<0xC3>", "\ufffd", 0.2)])
    add_scan(store, 3, "qwen3-0.6b", [(500, "▁blah", " blah", 0.5), (501, "<0xC3>", "\ufffd", 0.1)])
    # A text found only in a non-primary scan (with BOS) does not count.
    add_scan(store, 4, "qwen3-0.6b", [(777, "Á", "Á", 0.4)], bos=True)
    rows = store.query_dicts("SELECT * FROM shared_fps ORDER BY norm_text")
    assert [r["norm_text"] for r in rows] == [" blah", "Á"]       # no U+FFFD, no single-model 'solo'
    blah, a_acute = rows
    assert (blah["n_models"], blah["n_families"]) == (3, 2)
    assert blah["models"] == ["olmo2-1b", "olmo2-1b-inst", "qwen3-0.6b"]
    assert blah["families"] == ["olmo2", "qwen3"]
    assert blah["raw_tokens"] == ["Ġblah", "▁blah"]
    assert blah["min_prob"] == pytest.approx(0.5) and blah["max_prob"] == pytest.approx(0.9)
    assert (a_acute["n_models"], a_acute["n_families"]) == (2, 1)


def test_model_overlap_counts_and_jaccard_in_both_orders(store):
    for name, family in [("a", "f1"), ("b", "f2"), ("c", "f3")]:
        add_model(store, name, family, "base")
    add_scan(store, 1, "a", [(1, "x", "x", 0.5), (2, "y", "y", 0.5), (3, "z", "z", 0.5)])
    add_scan(store, 2, "b", [(7, "y", "y", 0.5), (8, "z", "z", 0.5), (9, "w", "w", 0.5), (10, "v", "v", 0.5)])
    add_scan(store, 3, "c", [(1, "q", "q", 0.5)])
    rows = {(r["model_a"], r["model_b"]): r for r in store.query_dicts("SELECT * FROM model_overlap")}
    assert len(rows) == 6                                   # every ordered pair, none with itself
    ab, ba = rows[("a", "b")], rows[("b", "a")]
    assert (ab["fps_a"], ab["fps_b"], ab["shared"]) == (3, 4, 2)
    assert ab["jaccard"] == pytest.approx(2 / 5)              # {y, z} / {x, y, z, w, v}
    assert (ba["fps_a"], ba["shared"], ba["jaccard"]) == (4, 2, ab["jaccard"])
    assert rows[("a", "c")]["shared"] == 0 and rows[("a", "c")]["jaccard"] == 0


def test_base_vs_inst_kept_lost_gained_within_common_range(store):
    add_model(store, "olmo2-7b", "olmo2", "base")
    add_model(store, "olmo2-7b-inst", "olmo2", "inst")
    add_model(store, "qwen3-8b", "qwen3", "base")           # no instruct partner: no row
    add_scan(store, 1, "olmo2-7b", [(1, "a", "a", 0.9), (2, "b", "b", 0.8), (3, "c", "c", 0.7),
                                    (900, "far", "far", 0.5)], id_range=(0, 1000))
    # The instruct scan is a slice of ids [0, 100): id 900 was not looked at, so it is not 'lost'.
    add_scan(store, 2, "olmo2-7b-inst", [(1, "a", "a", 0.6), (4, "d", "d", 0.4)], id_range=(0, 100))
    add_scan(store, 3, "qwen3-8b", [(1, "a", "a", 0.5)])
    summary = store.query_dicts("FROM base_vs_inst")
    assert len(summary) == 1
    row = summary[0]
    assert (row["family"], row["pair_name"], row["base_model"], row["inst_model"]) == (
        "olmo2", "olmo2-7b", "olmo2-7b", "olmo2-7b-inst")
    assert (row["id_start"], row["id_stop"]) == (0, 100)
    assert (row["kept"], row["lost"], row["gained"], row["base_fps"], row["inst_fps"]) == (1, 2, 1, 3, 2)
    assert row["kept_share"] == pytest.approx(1 / 3)
    changes = store.query("SELECT token_id, change, base_prob, inst_prob FROM base_vs_inst_tokens ORDER BY token_id")
    assert changes == [(1, "kept", 0.9, 0.6), (2, "lost", 0.8, None), (3, "lost", 0.7, None), (4, "gained", None, 0.4)]


def test_views_answer_on_an_empty_database(store):
    for view in ("model_pairs", "primary_scans", "primary_fps", "shared_fps", "model_overlap",
                 "base_vs_inst_tokens", "base_vs_inst", "seed_counts", "suspicious_tokens", "token_suspicion"):
        assert store.query(f"SELECT count(*) FROM {view}") == [(0,)]


def add_vector_fp(store, vector_id, model, methods):
    store.insert_rows("vector_fps", [{
        "vector_id": vector_id, "model": model, "embedding": "raw", "dtype": "float32", "dim": 2,
        "vector": [0.1, 0.2], "vector_norm": 0.22, "residual": 1e-7, "dedup_distance": 1e-4,
        "methods": methods, "seeds": [0], "run_ids": [vector_id], "n_runs": 1, "rollout_feed": "output",
        "rollout_steps": 3, "rollout_dist_by_l": [1e-7, 2e-7, 3e-7], "rollout_dist_max": 3e-7,
        "stable_threshold": 1e-3, "stable": True, "top_k": 1, "entropy": 0.1, "top_token_id": 1,
        "top_token_text": "<", "top_weight": 0.97, "top_token_is_fp": True,
    }])


def test_seed_counts_pairs_base_and_inst_with_token_and_vector_fps(store):
    add_model(store, "olmo2-1b", "olmo2", "base")
    add_model(store, "olmo2-1b-inst", "olmo2", "inst")
    add_model(store, "gemma3-270m", "gemma3", "base")
    add_model(store, "never-scanned", "x", "base")
    add_scan(store, 1, "olmo2-1b", [(1, "a", "a", 0.9), (2, "b", "b", 0.8), (3, "c", "c", 0.7)])
    add_scan(store, 2, "olmo2-1b-inst", [(1, "a", "a", 0.6)], id_range=(0, 50))
    add_scan(store, 3, "gemma3-270m", [(1, "a", "a", 0.6), (2, "b", "b", 0.6)], bos=True)
    add_vector_fp(store, 1, "olmo2-1b-inst", ["gradient", "iterate"])
    add_vector_fp(store, 2, "olmo2-1b-inst", ["gradient"])
    # The base model's vector search ran and found nothing: 0, not NULL (which means never searched).
    store.insert_rows("vector_runs", [{
        "model": "olmo2-1b", "method": "iterate", "seed": 0, "settings": "", "embedding": "raw",
        "dtype": "float32", "device": "cpu", "init_std": 0.02, "tolerance": 1e-6, "max_steps": 10,
        "batch_size": 1, "converged": False, "stop_reason": "max_steps", "steps": 10, "residual": 1.0,
        "best_residual": 1.0, "vector": [0.0, 0.0], "vector_norm": 0.0, "seconds": 0.1}])
    rows = {r["model"]: r for r in store.query_dicts("FROM seed_counts")}
    assert set(rows) == {"olmo2-1b", "gemma3-270m"}
    olmo = rows["olmo2-1b"]
    assert (olmo["base_model"], olmo["inst_model"]) == ("olmo2-1b", "olmo2-1b-inst")
    assert (olmo["base_token_fps"], olmo["inst_token_fps"]) == (3, 1)
    assert (olmo["base_tokens_scanned"], olmo["inst_tokens_scanned"]) == (1000, 50)
    assert (olmo["base_vector_fps"], olmo["inst_vector_fps"]) == (0, 2)
    assert (olmo["inst_vector_fps_iterate"], olmo["inst_vector_fps_gradient"]) == (1, 2)
    gemma = rows["gemma3-270m"]
    assert (gemma["base_token_fps"], gemma["inst_token_fps"], gemma["base_bos"]) == (2, None, True)
    assert gemma["base_vector_fps"] is None


EVIDENCE = dict(backend="api", index_name="v4_olmo-mix-1124_llama")


def add_evidence(store, model, token_id, *, q, percentile=99.0, n_bin_controls=40, rate=0.5):
    store.insert_rows("token_evidence", [{**EVIDENCE, "model": model, "token_id": token_id, "role": "fp",
                                         "unigram_count": 5000, "repeat_count": 66, "rate": rate, "bin": 7,
                                         "n_bin_controls": n_bin_controls, "percentile": percentile,
                                         "percentile_low": percentile - 8, "percentile_high": 100.0,
                                         "p_value": q / 2, "q_value": q}])


def add_source(store, model, token_id, source, *, docs, sampled, low, enrichment=6.0, baseline_share=0.1,
               role="fp", contrast=True):
    store.insert_rows("source_enrichment", [{**EVIDENCE, "model": model, "scope": "token", "token_id": token_id,
                                             "role": role, "source": source, "docs": docs, "sampled": sampled,
                                             "share": docs / sampled, "share_low": 0.5, "share_high": 0.95,
                                             "baseline_share": baseline_share, "enrichment": enrichment,
                                             "enrichment_low": low, "enrichment_high": 12.0}])
    if contrast:   # no control's run sampled: nothing for the FPs to exceed, so the corpus baseline decides
        store.con.execute("INSERT OR IGNORE INTO source_contrast VALUES (?, ?, ?, ?, ?, ?, 0, 0, NULL, NULL, NULL, "
                          "NULL, NULL, ?)", [model, EVIDENCE["backend"], EVIDENCE["index_name"], source, docs,
                                             sampled, baseline_share])


@pytest.fixture
def flagged_store(store):
    add_model(store, "olmo2-13b", "olmo2", "base")
    add_model(store, "qwen3-8b", "qwen3", "base")
    add_scan(store, 1, "olmo2-13b", [(1, "blah", "blah", 0.5), (2, "Á", "Á", 0.995), (3, "the", "the", 0.3)])
    add_scan(store, 2, "qwen3-8b", [(9, "blah", "blah", 0.4)])
    store.insert_rows("evidence_runs", [{**EVIDENCE, "model": m, "n": 10, "measure": "rate", "controls_k": 1,
                                         "bin_width": 0.5, "seed": 0, "fp_total": 3, "fp_sampled": 3,
                                         "sample_rule": "all", "baseline_positions": 1000}
                                        for m in ("olmo2-13b", "qwen3-8b")])
    add_evidence(store, "olmo2-13b", 1, q=0.001)                 # repetition enriched
    add_evidence(store, "olmo2-13b", 2, q=0.6, percentile=40.0)  # not enriched: its p(t | t) raises nothing
    add_evidence(store, "olmo2-13b", 3, q=0.2)
    add_evidence(store, "qwen3-8b", 9, q=0.04)
    add_source(store, "olmo2-13b", 2, "flan", docs=5, sampled=6, low=3.1)        # enriched, CI low >= 2
    add_source(store, "olmo2-13b", 3, "web", docs=3, sampled=3, low=2.5)         # under min_support documents
    add_source(store, "olmo2-13b", 1, "books", docs=10, sampled=20, low=1.4)     # CI reaches below 2
    return store


def test_suspicious_tokens_raise_each_rule_with_threshold_and_reason(flagged_store):
    rows = flagged_store.query_dicts(
        "SELECT model, text, rule, threshold, value, reason, strength, contribution, score, n_rules, prob_near_one "
        "FROM suspicious_tokens ORDER BY model, text, rule")
    fired = {(r["model"], r["text"], r["rule"]) for r in rows}
    assert fired == {("olmo2-13b", "blah", "repetition_enriched"), ("olmo2-13b", "Á", "source_enriched"),
                     ("qwen3-8b", "blah", "repetition_enriched")}
    by_key = {(r["model"], r["text"], r["rule"]): r for r in rows}
    rep = by_key[("olmo2-13b", "blah", "repetition_enriched")]
    assert rep["value"] == pytest.approx(0.001) and rep["threshold"] == 0.05
    assert "beats 99% of 40 matched controls (95% CI 91-100%), q = 0.001" in rep["reason"]
    assert "count x10 / count = 66 / 5,000" in rep["reason"] and "v4_olmo-mix-1124_llama" in rep["reason"]
    assert rep["strength"] == pytest.approx(math.log10(0.05 / 0.001) / 3)      # no cap: flags order by evidence
    src = by_key[("olmo2-13b", "Á", "source_enriched")]
    assert src["value"] == pytest.approx(3.1)
    assert '"flan" is 6.0x its corpus share (83.3% of 6 sampled documents vs 10.00%; 95% CI 3.1-12.0x)' in src["reason"]
    # p(t | t) is a property of the model: a column, never a flag by itself
    assert src["prob_near_one"] and not rep["prob_near_one"]
    weak = by_key[("qwen3-8b", "blah", "repetition_enriched")]
    assert weak["strength"] == pytest.approx(math.log10(0.05 / 0.04) / 3)
    assert rep["contribution"] == pytest.approx(1 + rep["strength"]) and rep["n_rules"] == 1
    ranked = flagged_store.query("SELECT model, text, n_rules FROM token_suspicion ORDER BY score DESC")
    assert ranked[0][:2] in (("olmo2-13b", "blah"), ("olmo2-13b", "Á")) and ranked[-1] == ("qwen3-8b", "blah", 1)


def test_suspicion_thresholds_are_configurable(flagged_store):
    con = flagged_store.con
    con.execute("UPDATE suspicion_thresholds SET threshold = 0.3 WHERE rule = 'repetition_enriched'")
    con.execute("UPDATE suspicion_thresholds SET min_support = 3 WHERE rule = 'source_enriched'")
    rules = set(flagged_store.query("SELECT text, rule FROM suspicious_tokens WHERE model = 'olmo2-13b'"))
    assert ("the", "repetition_enriched") in rules                # q = 0.2 passes now
    assert ("the", "source_enriched") in rules                    # 3 documents now suffice
    assert ("Á", "repetition_enriched") not in rules              # q = 0.6 still does not
    # A TEMP table of the same name overrides the stored thresholds for one read-only session.
    path = flagged_store.path
    flagged_store.close()
    with open_store(path, read_only=True) as ro:
        ro.con.execute("CREATE TEMP TABLE suspicion_thresholds AS FROM main.suspicion_thresholds")
        ro.con.execute("UPDATE suspicion_thresholds SET threshold = 1.2 WHERE rule = 'source_enriched'")
        texts = {t for (t,) in ro.query("SELECT text FROM suspicious_tokens WHERE rule = 'source_enriched'")}
        assert texts == {"blah", "Á", "the"}


def test_source_flag_needs_fp_documents_to_exceed_the_controls(store):
    """Spam holds the runs of FPs and controls alike: a corpus-enriched source that the controls' documents come
    from as often as the FPs' raises no flag, and the controls' flag rate under the same rule is shown."""
    add_model(store, "m", "fam", "base")
    add_scan(store, 1, "m", [(1, "aa", "aa", 0.5), (2, "bb", "bb", 0.5)])
    store.insert_rows("evidence_runs", [{**EVIDENCE, "model": "m", "n": 10, "measure": "rate", "controls_k": 1,
                                         "bin_width": 0.5, "seed": 0, "fp_total": 2, "fp_sampled": 2,
                                         "sample_rule": "all", "baseline_positions": 1000}])
    for token_id, role in ((1, "fp"), (2, "fp"), (50, "control"), (51, "control")):
        store.insert_rows("token_evidence", [{**EVIDENCE, "model": "m", "token_id": token_id, "role": role,
                                              "unigram_count": 100, "repeat_count": 5, "rate": 0.5, "bin": 2}])
    for token_id, role, source in ((1, "fp", "spam"), (50, "control", "spam"), (2, "fp", "forum"),
                                   (51, "control", "spam")):
        add_source(store, "m", token_id, source, docs=10, sampled=10, low=5.0, role=role, contrast=False)
    # per source, FP documents against control documents (what source_contrast stores)
    store.con.execute(f"INSERT INTO source_contrast VALUES ('m', '{EVIDENCE['backend']}', '{EVIDENCE['index_name']}', "
                      "'spam', 10, 20, 20, 20, 0.0, 0.0, 0.5, 1.0, 1.0, 0.1)")
    store.con.execute(f"INSERT INTO source_contrast VALUES ('m', '{EVIDENCE['backend']}', '{EVIDENCE['index_name']}', "
                      "'forum', 10, 20, 0, 20, 'inf'::DOUBLE, 8.0, 'inf'::DOUBLE, 1e-6, 2e-6, 0.1)")
    rows = store.query_dicts("SELECT token_id, rule, fp_with_runs, fp_flagged, fp_flag_rate, control_with_runs, "
                             "control_flagged, control_flag_rate, index_is_proxy FROM suspicious_tokens WHERE model = 'm'")
    assert [r["token_id"] for r in rows] == [2]                  # forum: FPs only; spam: FPs and controls alike
    r = rows[0]
    assert (r["fp_with_runs"], r["fp_flagged"], r["control_with_runs"], r["control_flagged"]) == (2, 1, 2, 0)
    assert r["fp_flag_rate"] == 0.5 and r["control_flag_rate"] == 0.0 and r["index_is_proxy"]
