"""Provenance runs end to end over a real local index and the test HTTP server: queries and variants, counts
checked against an independent count, the cache, failures, documents, sources and default indexes."""

from __future__ import annotations

import json
import threading
import time

import pytest

from fpprov.corpus.api import ApiBackend
from fpprov.corpus.base import CorpusBackend, CountResult, DocResult, FindResult
from fpprov.corpus.http import HttpSettings
from fpprov.corpus.local import LocalBackend
from fpprov.corpus.mini import MiniBackend
from fpprov.errors import FpprovError
from fpprov.provenance import (FpToken, ProvenanceOptions, ProvenanceProgress, RunSummary, no_text_reason,
                               plan_entries, run_provenance, sample_positions, top_rows)
from fpprov.provenance.plan import token_spellings
from fpprov.provenance.spellings import Speller
from fpprov.provenance.counts import count_queries
from fpprov.provenance.documents import sample_documents
from fpprov.db.store import open_store
from helpers import FAST_HTTP as FAST
from infinigram_server import add_fp_scan, independent_count, serve

TOKENS = [(1, "blah", "normal"), (2, "Á", "normal"), (3, "ffi", "normal"), (4, " Justine", "normal"),
          (5, "лье", "normal"), (6, "<0xC3>", "byte_fragment"), (7, "<bos>", "special"), (8, "\n", "normal"),
          (9, "qqqq", "normal"), (10, "\ufffd", "normal")]


@pytest.fixture(scope="module")
def index(corpus_index):
    return corpus_index(5, shards=2)


@pytest.fixture()
def store(tmp_path):
    s = open_store(tmp_path / "prov.duckdb")
    add_fp_scan(s, "tiny-a", TOKENS)
    add_fp_scan(s, "tiny-b", TOKENS[:3])
    add_fp_scan(s, "tiny-c", [(99, "blah", "normal")], complete=False)  # unfinished scans are not traced
    yield s
    s.close()


def counting(**options) -> ProvenanceOptions:
    """Options for the tests of counting and sampling as such: no controls, no baseline, documents only when a
    test asks (the evidence on top of them is tests/test_evidence_run.py's)."""
    return ProvenanceOptions(**{"docs": 0, "controls": 0, "baseline_positions": 0, **options})


def test_spellings_of_a_byte_level_token_and_which_count():
    def spell(text, n=3):
        out = token_spellings(FpToken("m", 1, text, "normal"), n, Speller.concatenating("m"))
        return [(v, q, c["in_evidence"], c["loose"]) for v, q, c in out]
    # the emitted run counts; the run after a space is shown; the stripped text is loose
    assert spell(" Justine") == [("emitted", " Justine Justine Justine", True, False),
                                 ("space_stripped", "JustineJustineJustine", False, True)]
    assert spell("blah") == [("emitted", "blahblahblah", True, False), ("emitted_spaced", " blahblahblah", False, False)]
    # a run of one character matches unrelated text: loose, in every spelling, out of the statistics
    assert spell("\n") == [("emitted", "\n\n\n", False, True)]
    assert spell("A") == [("emitted", "AAA", False, True), ("emitted_spaced", " AAA", False, True)]
    assert spell(" ") == [("emitted", "   ", False, True)]
    assert spell("A", 1) == [("emitted", "A", False, True), ("emitted_spaced", " A", False, True)]
    assert spell("ab", 1) == [("emitted", "ab", True, False), ("emitted_spaced", " ab", False, False)]


def test_tokens_without_text_are_not_queryable_with_a_reason():
    def tok(text, category="normal"):
        return FpToken("m", 1, text, category)
    assert "byte fragment" in no_text_reason(tok("<0xC3>", "byte_fragment"))
    assert "special" in no_text_reason(tok("<bos>", "special"))
    assert "empty" in no_text_reason(tok(""))
    assert "U+FFFD" in no_text_reason(tok("a\ufffd"))
    assert no_text_reason(tok(" Tiber")) is None


def test_local_counts_equal_an_independent_count_and_nothing_is_a_false_zero(store, index):
    summary = run_provenance(store, backend="local", index_dirs=[index[0]],
                             options=counting(ladder=(1, 2, 10)))
    assert summary.failed == 0 and summary.models == ["tiny-a", "tiny-b"]
    rows = store.query_dicts("SELECT * FROM provenance_counts")
    assert {r["model"] for r in rows} == {"tiny-a", "tiny-b"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["count"] == independent_count(index[1], r["query"]) for r in ok)
    assert any(r["count"] > 0 for r in ok if r["n"] == 10)
    unqueryable = {r["token_id"]: r for r in rows if r["status"] == "not_queryable"}
    assert set(unqueryable) == {6, 7, 10}
    assert all(r["count"] is None and r["reason"] for r in unqueryable.values())
    justine = {(r["n"], r["variant"]): r["query"] for r in rows if r["token_id"] == 4 and r["model"] == "tiny-a"}
    assert justine[(2, "emitted")] == " Justine Justine" and justine[(2, "space_stripped")] == "JustineJustine"
    # The summary's top rows: counts at the largest n of the emitted run, highest first; a loose run ('Á' x 10,
    # one character repeated) is not among them although it has the largest count.
    top = top_rows(store, summary)
    assert top and all(r["n"] == 10 and r["count"] > 0 and r["variant"] == "emitted" for r in top)
    assert [r["count"] for r in top] == sorted((r["count"] for r in top), reverse=True)
    loose = {r["token_id"]: r["count"] for r in ok if r["loose"] and r["n"] == 10 and r["model"] == "tiny-a"}
    assert loose.get(2, 0) > max(r["count"] for r in top)
    best = {}
    for r in ok:
        if r["n"] == 10 and r["model"] == "tiny-a" and r["in_evidence"]:
            best[r["token_id"]] = max(best.get(r["token_id"], 0), r["count"])
    assert {r["token_id"]: r["count"] for r in top if r["model"] == "tiny-a"} == {k: v for k, v in best.items() if v}
    # The counts cache is shared: tiny-b's tokens are tiny-a's, asked once.
    assert summary.sent == store.query("SELECT count(*) FROM ngram_counts")[0][0] == summary.queries


def test_rerun_sends_zero_queries_and_extends_the_ladder_only(store, index):
    run_provenance(store, backend="local", index_dirs=[index[0]], options=counting(ladder=(2,)))
    again = run_provenance(store, backend="local", index_dirs=[index[0]], options=counting(ladder=(2,)))
    assert again.sent == 0 and again.requests == 0 and again.cached == again.queries > 0
    wider = run_provenance(store, backend="local", index_dirs=[index[0]], options=counting(ladder=(2, 3)))
    assert 0 < wider.sent == wider.queries - again.queries


def test_sample_positions_are_seeded_distinct_and_prefix_stable():
    first = sample_positions(1000, 10, seed=1, query="blah")
    assert len(set(first)) == 10 and all(0 <= p < 1000 for p in first)
    assert sample_positions(1000, 25, seed=1, query="blah")[:10] == first
    assert sample_positions(1000, 10, seed=2, query="blah") != first
    assert sorted(sample_positions(7, 50, seed=1, query="x")) == list(range(7))


def test_documents_are_reproducible_and_sources_add_up(tmp_path, store, index):
    options = counting(ladder=(2,), docs=4, seed=7, source_field="source")
    summary = run_provenance(store, backend="local", index_dirs=[index[0]], options=options)
    assert summary.docs_fetched > 0 and summary.docs_failed == 0
    docs = store.query_dicts("SELECT * FROM documents ORDER BY query, sample_no")
    by_id = {r["id"]: r for r in index[1]}
    for doc in docs:
        assert doc["status"] == "ok" and doc["query"] in doc["snippet"]
        record = by_id[json.loads(doc["metadata"])["metadata"]["id"]]
        assert doc["source"] == record["source"] and doc["query"] in record["text"]
    # Same seed in a fresh database: the same matches; a larger --docs keeps the first ones.
    other = open_store(tmp_path / "other.duckdb")
    add_fp_scan(other, "tiny-a", TOKENS)
    run_provenance(other, backend="local", index_dirs=[index[0]],
                   options=counting(ladder=(2,), docs=6, seed=7))
    picks = lambda s, k: {(d["query"], d["sample_no"]): (d["shard"], d["rank"])  # noqa: E731
                          for d in s.query_dicts(f"SELECT * FROM documents WHERE sample_no < {k}")}
    assert picks(other, 4) == picks(store, 4)
    other.close()
    # Shares per token: every Á run comes from the flan documents; shares sum to one.
    shares = store.query_dicts("SELECT * FROM source_shares WHERE model = 'tiny-a'")
    assert {(r["source"], r["share"]) for r in shares if r["query"] == "ÁÁ"} == {("flan", 1.0)}
    totals = {}
    for r in shares:
        totals[(r["token_id"], r["n"], r["variant"])] = totals.get((r["token_id"], r["n"], r["variant"]), 0) + r["share"]
    assert all(abs(t - 1.0) < 1e-9 for t in totals.values())
    # A rerun fetches nothing; another --source-field re-derives sources from the stored metadata.
    again = run_provenance(store, backend="local", index_dirs=[index[0]],
                           options=counting(ladder=(2,), docs=4, seed=7, source_field="id"))
    assert again.requests == 0 and again.docs_fetched == 0
    assert all(s.startswith("doc") for (s,) in store.query("SELECT source FROM documents"))


def test_min_count_limits_documents(store, index):
    high = run_provenance(store, backend="local", index_dirs=[index[0]],
                          options=counting(ladder=(1,), docs=2, min_count=10 ** 6))
    assert high.docs_wanted == 0 and store.query("SELECT count(*) FROM documents")[0][0] == 0


def test_api_failures_are_stored_retried_and_counted(store, index):
    with serve([index[0]]) as srv:
        srv.query_faults["ffi"] = "503"
        summary = run_provenance(store, backend="api", index="test_index", api_url=srv.url, http=FAST,
                                 options=counting(ladder=(1,)))
        assert summary.failed == 1 and summary.failed_total == 1
        row = store.query_dicts("SELECT * FROM ngram_counts WHERE query = 'ffi'")[0]
        assert row["status"] == "failed" and "HTTP 503" in row["error"] and row["count"] is None
        ok = store.query_dicts("SELECT * FROM ngram_counts WHERE status = 'ok' AND query = 'blah'")[0]
        assert ok["token_ids"] == list(b"blah") and ok["tokens"] == list("blah") and ok["latency_ms"] is not None
        del srv.query_faults["ffi"]
        before = srv.posts
        retry = run_provenance(store, backend="api", index="test_index", api_url=srv.url, http=FAST,
                               options=counting(ladder=(1,)))
        assert srv.posts - before == 1 and retry.sent == 1 and retry.failed == 0
        row = store.query_dicts("SELECT * FROM ngram_counts WHERE query = 'ffi'")[0]
        assert row["status"] == "ok" and row["attempts"] == 2 and row["error"] is None
        assert row["count"] == independent_count(index[1], "ffi")
        before = srv.posts
        run_provenance(store, backend="api", index="test_index", api_url=srv.url, http=FAST,
                       options=counting(ladder=(1,), docs=2))
        docs_posts = srv.posts - before
        run_provenance(store, backend="api", index="test_index", api_url=srv.url, http=FAST,
                       options=counting(ladder=(1,), docs=2))
        assert docs_posts > 0 and srv.posts - before == docs_posts  # the rerun sent nothing


def test_boolean_words_are_not_queryable_on_the_api(tmp_path, index):
    s = open_store(tmp_path / "b.duckdb")
    add_fp_scan(s, "tiny", [(1, " AND", "normal"), (2, "OR", "normal")])
    with serve([index[0]]) as srv:
        run_provenance(s, backend="api", index="test_index", api_url=srv.url, http=FAST,
                       options=counting(ladder=(1, 3)))
        sent = {q for _, q in srv.queries}
    rows = {(r["token_id"], r["n"], r["variant"]): r for r in s.query_dicts("SELECT * FROM provenance_counts")}
    assert rows[(1, 3, "emitted")]["status"] == "not_queryable" and "boolean" in rows[(1, 3, "emitted")]["reason"]
    assert rows[(1, 1, "emitted")]["status"] == "ok"  # ' AND' alone is a phrase, not a boolean query
    assert " AND AND AND" not in sent and " OR OR OR" not in sent
    s.close()


def test_default_index_per_model_and_proxy_labels(tmp_path, index):
    s = open_store(tmp_path / "d.duckdb")
    add_fp_scan(s, "gemma3-270m", [(1, "blah", "normal")])
    add_fp_scan(s, "olmo2-13b", [(1, "blah", "normal")])
    with serve([index[0]], indexes=("v4_dclm-baseline_llama", "v4_olmo-mix-1124_llama")) as srv:
        summary = run_provenance(s, backend="api", api_url=srv.url, http=FAST, options=counting(ladder=(1,)))
    assert sorted(summary.indexes) == ["v4_dclm-baseline_llama", "v4_olmo-mix-1124_llama"]
    labels = dict(s.query("SELECT DISTINCT model || ' ' || index_name, index_is_proxy FROM provenance"))
    assert labels == {"gemma3-270m v4_dclm-baseline_llama": True, "olmo2-13b v4_olmo-mix-1124_llama": False}
    assert [r["model"] for r in top_rows(s, summary)] == ["gemma3-270m", "olmo2-13b"]
    add_fp_scan(s, "my-own-model", [(1, "blah", "normal")])
    with pytest.raises(FpprovError, match="'my-own-model' has no default index .*pass --index"):
        run_provenance(s, backend="api", api_url="http://127.0.0.1:9/", options=counting(ladder=(1,)))
    s.close()


def test_unknown_index_and_missing_scans_are_one_line_errors(store, index):
    with serve([index[0]]) as srv:
        with pytest.raises(FpprovError, match="unknown index 'v4_typo' for backend api; known: "):
            run_provenance(store, backend="api", index="v4_typo", api_url=srv.url, http=FAST)
    with pytest.raises(FpprovError, match="no complete scan with fixed points for tiny-c"):
        run_provenance(store, backend="local", models=["tiny-c"], index_dirs=[index[0]])
    with pytest.raises(FpprovError, match="needs --index-dir"):
        run_provenance(store, backend="local")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_run_each_bounds_work_in_flight_and_turns_failures_into_reasons(concurrency):
    import threading
    import time

    from fpprov.corpus.base import QueryFailed
    from fpprov.provenance import run_each

    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def work(x):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        if x % 3 == 0:
            raise QueryFailed(f"bad {x}")
        if x == 4:
            raise ValueError("not a number")
        return 2 * x

    out = {item: (result, reason) for item, result, reason in run_each(work, list(range(12)), concurrency)}
    assert sorted(out) == list(range(12))
    assert out[3] == (None, "bad 3") and out[5] == (10, None)
    assert out[4][0] is None and "ValueError" in out[4][1]
    assert state["max"] <= concurrency


def test_a_backend_that_fails_everything_stops_the_run_and_a_rerun_completes(tmp_path, index):
    s = open_store(tmp_path / "down.duckdb")
    add_fp_scan(s, "tiny", [(i, f"w{i}q", "normal") for i in range(15)])  # 30 queries
    with serve([index[0]]) as srv:
        srv.fault_all = "502"
        with pytest.raises(FpprovError, match=r"stopped after 4 failed queries in a row \(last: HTTP 502"):
            run_provenance(s, backend="api", index="test_index", api_url=srv.url, http=FAST,
                           options=counting(ladder=(1,), give_up_after=4, concurrency=1))
        failed = s.query("SELECT count(*) FROM ngram_counts WHERE status = 'failed'")[0][0]
        assert failed == 4 and srv.posts == 4 * (FAST.retries + 1)  # then nothing more was sent
        srv.fault_all = None
        srv.posts = 0
        summary = run_provenance(s, backend="api", index="test_index", api_url=srv.url, http=FAST,
                                 options=counting(ladder=(1,)))
        assert summary.sent == srv.posts == 30 and summary.failed == 0
    s.close()


class _Watched:
    """Stands in for the local engine: every call goes through, recording the most calls ever running at once."""

    def __init__(self, engine):
        self.engine, self.lock, self.now, self.most = engine, threading.Lock(), 0, 0

    def __getattr__(self, name):
        method = getattr(self.engine, name)

        def call(*args, **kwargs):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                time.sleep(0.005)
                return method(*args, **kwargs)
            finally:
                with self.lock:
                    self.now -= 1
        return call


def test_the_local_engine_gets_one_query_at_a_time_and_no_query_over_its_byte_cap(store, index):
    backend = LocalBackend([index[0]])
    try:
        backend.engine = watched = _Watched(backend.engine)
        summary = RunSummary(backend=backend.backend)
        queries = ["blah", "ffi", " Justine", "qqqq", "Á", "лье", "w1q", "w2q"]
        count_queries(store, backend, queries, counting(ladder=(1,), concurrency=4), ProvenanceProgress(), summary)
        assert summary.ok == len(queries) and summary.failed_total == 0
        assert watched.most == 1   # asked for 4 at once
        cap = backend.max_query_bytes
        unit = "x" * -(-cap // 999)                   # so that cap // len(unit) + 1 is at most 1,000 copies
        fits = cap // len(unit)
        assert backend.repeated_reason(unit, fits) is None
        assert "bytes" in backend.repeated_reason(unit, fits + 1)
    finally:
        backend.close()


def test_the_http_backends_take_as_many_queries_at_once_as_their_settings_say():
    for cls in (ApiBackend, MiniBackend):
        backend = cls("some_index", "http://127.0.0.1:9/", HttpSettings(concurrency=3))  # sends nothing
        try:
            assert backend.concurrency == 3
        finally:
            backend.close()


class _ByteCapped(LocalBackend):
    max_query_bytes = 8


def test_the_planner_takes_the_query_cap_from_the_backend(index):
    token = [FpToken("m", 1, "abc", "normal")]
    stock, capped = LocalBackend([index[0]]), _ByteCapped([index[0]])
    try:
        speller = Speller.concatenating("m")
        assert all(r["queryable"] for r in plan_entries(token, stock, None, [2, 3], speller))
        rows = {(r["n"], r["variant"]): r for r in plan_entries(token, capped, None, [2, 3], speller)}
    finally:
        stock.close()
        capped.close()
    assert rows[(2, "emitted")]["query"] == "abcabc" and rows[(2, "emitted_spaced")]["query"] == " abcabc"  # 7 bytes
    assert not rows[(3, "emitted")]["queryable"] and rows[(3, "emitted")]["query"] is None
    assert rows[(3, "emitted")]["reason"] == "query is 9 bytes, over the local limit of 8"
    assert not rows[(3, "emitted")]["in_evidence"]
    assert rows[(3, "emitted_spaced")]["reason"] == "query is 10 bytes, over the local limit of 8"


class _OneAtATime(CorpusBackend):
    """Answers every query after a pause, recording the most calls it ever had running at once."""
    backend, index_name, concurrency = "api", "one_at_a_time", 1

    def __init__(self):
        super().__init__()
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def _call(self, value):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.01)
        with self.lock:
            self.now -= 1
        return value

    def count(self, query):
        return self._call(CountResult(count=3))

    def find(self, query):
        return self._call(FindResult(count=3, segments=[(0, 3)]))

    def get_doc(self, query, shard, rank, context_chars):
        return self._call(DocResult(doc_ix=rank, doc_len=10, disp_len=10, needle_offset=0, snippet=query))


def test_counts_and_documents_never_keep_more_in_flight_than_the_backend_takes(store):
    backend = _OneAtATime()
    options = counting(ladder=(1,), docs=2, concurrency=4)
    summary = RunSummary(backend=backend.backend)
    queries = [f"q{i}" for i in range(8)]
    count_queries(store, backend, queries, options, ProvenanceProgress(), summary)
    sample_documents(store, backend, queries, options, ProvenanceProgress(), summary)
    assert summary.ok == 8 and summary.docs_fetched == 16 and summary.failed_total == 0
    assert backend.most == 1
