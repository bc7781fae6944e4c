"""Count what the model emits (issue 23 point 5): the statistics count decode([t] x n) for FPs and controls,
per tokenizer kind (byte-level BPE, SentencePiece-style Metaspace, WordLevel), never a spelling the model does
not write; loose spellings are kept out; the power of the repetition rule at the default --controls."""

from __future__ import annotations

import evidence_corpus
import pytest
from helpers import FAST_HTTP
from tiny import build_tokenizer

from fpprov.corpus.factory import open_backend
from fpprov.db.store import open_store
from fpprov.provenance import FpToken, ProvenanceOptions, run_provenance
from fpprov.provenance.budget import estimate_run, power_line, select_fps
from fpprov.provenance.controls import LOOSE_SPELLING, candidate_pool, plan_pool
from fpprov.provenance.spellings import Speller
from fpprov.tokens import TokenDescriber

QUICK = dict(ladder=(evidence_corpus.RUN,), docs=0, baseline_positions=0, seed=3)


def _scanned_vocabulary(tmp_path, kind):
    """A database whose model has a real tokenizer of ``kind`` at models.location and its described vocabulary."""
    from transformers import AutoTokenizer

    folder = tmp_path / kind
    if kind == "byte_level":
        build_tokenizer().save_pretrained(folder)
    else:
        evidence_corpus.save_tokenizer(evidence_corpus.vocabulary(30, 1, kind), kind, folder)
    tok = AutoTokenizer.from_pretrained(folder)
    describer = TokenDescriber(tok)
    infos = [describer.describe(i) for i in range(len(tok))]
    store = open_store(tmp_path / f"{kind}.duckdb")
    store.insert_rows("models", [{"name": kind, "source_kind": "directory", "location": str(folder)}])
    store.insert_rows("vocabulary", [{"model": kind, "token_id": t.token_id, "raw_token": t.raw_token, "text": t.text,
                                      "norm_text": t.norm_text, "category": t.category} for t in infos])
    return store, tok, infos


@pytest.mark.parametrize("kind", evidence_corpus.KINDS)
def test_the_emitted_run_is_the_tokenizers_decode_of_the_repeated_token(tmp_path, kind):
    store, tok, infos = _scanned_vocabulary(tmp_path, kind)
    try:
        speller = Speller.for_model(store, kind)
    finally:
        store.close()
    words = [t for t in infos if t.category == "normal" and t.text.strip() and len(set(t.text)) > 1]
    assert words
    for t in words:
        run, why = speller.run(t.token_id, t.text, 4)
        assert why is None and run == tok.decode([t.token_id] * 4, clean_up_tokenization_spaces=False)
    joined = [t for t in words if speller.run(t.token_id, t.text, 4)[0] != t.text * 4]
    if kind == "byte_level":
        # the vocabulary proves the byte-level decoder: the rule spells every run, no tokenizer is loaded
        assert speller.byte_level and not joined and speller._decode is None
    else:
        # space-joining (WordLevel) and Metaspace decoders: the text repeated is never what the model emits
        assert not speller.byte_level and len(joined) == len(words)
        sample = words[0]
        assert speller.run(sample.token_id, sample.text, 3)[0] == " ".join([sample.text.strip()] * 3)


def test_without_its_tokenizer_a_space_joining_model_is_not_queryable_with_the_reason(tmp_path):
    store, _, infos = _scanned_vocabulary(tmp_path, "wordlevel")
    try:
        store.con.execute("UPDATE models SET location = ?", [str(tmp_path / "gone")])
        speller = Speller.for_model(store, "wordlevel")
    finally:
        store.close()
    word = next(t for t in infos if t.category == "normal" and len(t.text) > 2)
    run, why = speller.run(word.token_id, word.text, 3)
    assert run is None and "could not be loaded" in why and "byte-level" in why
    assert speller.run(word.token_id, word.text, 1) == (word.text, None)   # the text once needs no decode


def test_a_run_of_one_character_is_loose_for_fps_and_candidate_controls(tmp_path):
    from infinigram_server import add_fp_scan

    store = open_store(tmp_path / "loose.duckdb")
    try:
        add_fp_scan(store, "m", [(1, "A", "normal"), (2, " blah", "normal")])
        store.insert_rows("vocabulary", [{"model": "m", "token_id": i, "raw_token": raw, "text": text,
                                          "norm_text": text, "category": "normal"}
                                         for i, raw, text in ((3, "B", "B"), (4, "Ġcat", " cat"), (5, "zz", "zz"),
                                                              (6, "ĠĠ", "  "), (7, "ab", "ab"))])
        speller = Speller.for_model(store, "m")
        pool = candidate_pool(store, "m", None, 0, speller)
        fps = [FpToken("m", 1, "A", "normal"), FpToken("m", 2, " blah", "normal")]
        api = open_backend("api", "v4_test", settings=FAST_HTTP)
        try:
            plan = plan_pool(store, api, fps, False, ProvenanceOptions(controls=1), speller)
        finally:
            api.close()
    finally:
        store.close()
    assert sorted(t.token_id for t in pool) == [4, 7]          # 'B' x n, 'zz' x n and spaces x n are loose
    assert plan.kept_out == {1: LOOSE_SPELLING}


@pytest.fixture(scope="module", params=("wordlevel", "metaspace"))
def emitted_only(request, tmp_path_factory):
    """A planted corpus whose FP runs exist only as the model emits them ('word word ...'), traced with the
    local backend's default number of controls."""
    kind = request.param
    db, index, fps = evidence_corpus.build(tmp_path_factory.mktemp(kind), planted=True, n_words=240, n_fps=30,
                                           kind=kind)
    with open_store(db) as store:
        summary = run_provenance(store, backend="local", index_dirs=[index], options=ProvenanceOptions(**QUICK))
    return kind, db, index, fps, summary


def test_fps_are_found_in_the_spelling_the_model_emits_and_not_in_the_text_repeated(emitted_only):
    kind, db, index, fps, _ = emitted_only
    with open_store(db, read_only=True) as store:
        row = store.query_dicts("FROM fp_enrichment")[0]
        counted = store.query_dicts(
            "SELECT token_id, token_text, query, count FROM provenance_counts "
            "WHERE role = 'fp' AND n = ? AND in_evidence", [evidence_corpus.RUN])
        variants = {r[0] for r in store.query("SELECT DISTINCT variant FROM provenance WHERE in_evidence")}
    assert variants == {"emitted"}
    assert len(counted) == len(fps) and all(r["query"] == " ".join([r["token_text"]] * evidence_corpus.RUN)
                                            for r in counted)
    assert all(r["count"] > 0 for r in counted)             # every planted run is found where the model writes it
    backend = open_backend("local", None, index_dirs=[index])
    try:   # the text repeated without separator (what `as_is` counted) occurs nowhere: its AUC would be 0.5
        assert all(backend.count(r["token_text"] * evidence_corpus.RUN).count == 0 for r in counted)
    finally:
        backend.close()
    assert row["auc"] > 0.95 and row["auc_low"] > 0.8, (kind, row)


def test_the_local_default_controls_let_repetition_enriched_fire(emitted_only):
    _, db, _, fps, summary = emitted_only
    with open_store(db, read_only=True) as store:
        k = store.query("SELECT controls_k FROM evidence_runs")[0][0]
        smallest = store.query("SELECT min(p_value), min(n_bin_controls) FROM token_evidence WHERE role = 'fp'")[0]
        flagged = {r[0] for r in store.query(
            "SELECT token_id FROM suspicious_tokens WHERE rule = 'repetition_enriched'")}
        kept_out = {r[0] for r in store.query("SELECT token_id FROM evidence_exclusions WHERE role = 'fp'")}
    assert k == 19 and smallest[1] >= 19 and smallest[0] <= 0.05
    assert flagged and flagged <= fps and len(flagged) >= 0.8 * len(fps - kept_out)


class _Named:
    """What estimate_run reads of a backend: its kind and index name (no rate limit)."""

    def __init__(self, backend: str):
        self.backend, self.index_name = backend, f"{backend}-index"


def test_the_plan_reports_the_power_of_the_repetition_rule():
    selection = select_fps([FpToken("m", i, f" w{i}", "normal", 0.5) for i in range(10)], None, seed=0)
    local = estimate_run(_Named("local"), selection, ProvenanceOptions())
    http = estimate_run(_Named("api"), selection, ProvenanceOptions())
    asked = estimate_run(_Named("local"), selection, ProvenanceOptions(controls=4))
    assert (local.controls_per_fp, local.smallest_p, local.bin_fps_to_fire) == (19, 0.05, 1)
    assert (http.controls_per_fp, http.smallest_p, http.bin_fps_to_fire) == (1, 0.5, 19)
    assert (asked.controls_per_fp, asked.smallest_p, asked.bin_fps_to_fire) == (4, 0.2, 5)
    assert local.controls == 190 and http.controls == 10
    assert "1/(1+K) = 0.05;" in power_line(local) and "1/(1+K) = 0.5;" in power_line(http)
    assert "19+ FPs" in power_line(http) and "5+ FPs" in power_line(asked)
    assert power_line(estimate_run(_Named("local"), selection, ProvenanceOptions(controls=0))) is None
    # K = 19 on a small vocabulary: the controls are bounded by the candidates they are drawn from, and so are
    # their queries (n = 1 and 12, two spellings) and documents (a find and 20 documents per spelling)
    few = estimate_run(_Named("local"), selection, ProvenanceOptions(), pool_candidates=50)
    assert few.controls == 50 and few.controls_per_fp == 19
    assert few.count_queries == 10 * 4 + 10 * 19 * 4 + 50 * 4 and few.doc_requests == (10 + 50) * 2 * 21


def test_the_command_prints_the_power_before_it_sends(tmp_path):
    from typer.testing import CliRunner

    from fpprov.cli import app

    db, index, _ = evidence_corpus.build(tmp_path, planted=True, n_words=60, n_fps=6)
    quick = ["provenance", "--db", str(db), "--backend", "local", "--index-dir", str(index), "--ngram", "12",
             "--docs", "0", "--baseline-positions", "0"]
    default = CliRunner().invoke(app, quick)
    assert default.exit_code == 0, default.output
    flat = " ".join(default.output.split())
    assert "19 control(s) per FP" in flat and "1/(1+K) = 0.05;" in flat and "can fire in every bin" in flat
    two = " ".join(CliRunner().invoke(app, [*quick, "--controls", "2"]).output.split())
    assert "1/(1+K) = 0.333;" in two and "bins of 10+ FPs" in two
