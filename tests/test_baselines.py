"""Source baselines: N random corpus positions resolved to their documents' sources, stored per index, on the
local engine and against the API test server (faults included); infini-gram-mini gives none, with the reason."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from fpprov.corpus.api import ApiBackend
from fpprov.corpus.base import QueryFailed
from fpprov.corpus.index_build import build_index
from fpprov.corpus.local import LocalBackend
from fpprov.corpus.mini import MiniBackend
from fpprov.errors import FpprovError
from fpprov.evidence.sources import sample_baseline_positions, source_shares
from fpprov.provenance.baselines import look_up_baseline, missing_baseline_positions
from fpprov.provenance.options import ProvenanceOptions, ProvenanceProgress, RunSummary
from fpprov.db.store import open_store
from infini_gram.engine import InfiniGramEngine
from helpers import FAST_HTTP
from infinigram_server import serve, write_corpus

# Documents per source and words per document: sources of very different sizes (text shares ~2% to ~50%).
_SOURCES = {"web": (40, (30, 60)), "books": (6, (150, 250)), "code": (30, (5, 15)), "news": (12, (20, 40)),
            "tiny": (8, (2, 6))}
_WORDS = ("the", "river", "model", "data", "of", "and", "def", "return", "équation", "数据", "лье", "x = 1;")


def _records(seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for source, (docs, (low, high)) in _SOURCES.items():
        for i in range(docs):
            text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(low, high)))
            records.append({"text": text, "source": source, "id": f"{source}{i}"})
    rng.shuffle(records)
    return records


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("baseline-corpus")
    records = _records()
    write_corpus(base / "corpus", records)
    build_index(base / "corpus", base / "index", shards=2)
    return base / "index", records


@pytest.fixture()
def store(tmp_path):
    s = open_store(tmp_path / "baselines.duckdb")
    yield s
    s.close()


def _true_shares(records: list[dict]) -> dict[str, float]:
    """Each source's share of the indexed bytes: its documents' UTF-8 text plus the one-byte separator the
    byte-level index puts before each document (a position on it belongs to the document that follows)."""
    sizes = Counter()
    for r in records:
        sizes[r["source"]] += len(r["text"].encode("utf-8")) + 1
    total = sum(sizes.values())
    return {s: n / total for s, n in sizes.items()}


def _run(store, corpus, positions: int, seed: int = 0, **options):
    summary = RunSummary(corpus.backend)
    opts = ProvenanceOptions(baseline_positions=positions, seed=seed, **options)
    baseline = look_up_baseline(store, corpus, positions, seed, "source", opts, ProvenanceProgress(), summary)
    return baseline, summary


def _rows(store, backend: str):
    return store.query_dicts("SELECT sample_no, shard, rank, status, error, doc_ix, source, fetched_at "
                             "FROM baseline_positions WHERE backend = ? ORDER BY sample_no", [backend])


def test_local_estimate_lies_within_each_sources_wilson_ci(store, corpus):
    index_dir, records = corpus
    backend = LocalBackend([index_dir])
    truth = _true_shares(records)
    assert sum(backend.shard_sizes()) == sum(len(r["text"].encode("utf-8")) + 1 for r in records)
    baseline, summary = _run(store, backend, 1000)
    assert baseline.complete and len(baseline.sources) == 1000
    assert (summary.baseline_wanted, summary.baseline_cached, summary.baseline_fetched) == (1000, 0, 1000)
    shares = {s.source: s for s in source_shares(baseline.sources)}
    assert set(shares) == set(truth)
    for source, true_share in truth.items():
        assert shares[source].ci_low <= true_share <= shares[source].ci_high, (source, shares[source], true_share)
    # The view reads the same estimate from the stored positions.
    view = dict(store.query("SELECT source, share FROM corpus_baselines WHERE backend = 'local'"))
    assert view == pytest.approx({s: v.share for s, v in shares.items()})


def test_stored_positions_are_the_seeded_draw_resolved_to_their_documents(store, corpus):
    index_dir, _ = corpus
    backend = LocalBackend([index_dir])
    _run(store, backend, 200, seed=5)
    rows = _rows(store, "local")
    drawn = sample_baseline_positions(backend.shard_sizes(), 200, 5)
    assert [(r["shard"], r["rank"]) for r in rows] == [(p.shard, p.rank) for p in drawn]
    # An engine independent of fpprov's wrapper says which document holds each rank.
    engine = InfiniGramEngine(index_dir=[str(index_dir)], eos_token_id=0, vocab_size=255, token_dtype="u8")
    for row in rows[:50]:
        doc = engine.get_doc_by_rank(s=row["shard"], rank=row["rank"], max_disp_len=1)
        assert row["doc_ix"] == doc["doc_ix"] and row["status"] == "ok" and row["error"] is None
        assert f'"source": "{row["source"]}"' in doc["metadata"]


def test_rerun_sends_nothing(store, corpus):
    backend = LocalBackend([corpus[0]])
    first, _ = _run(store, backend, 300)
    calls = backend.calls
    assert calls == 301  # the shard sizes, then one lookup per position
    opts = ProvenanceOptions(baseline_positions=300)
    assert missing_baseline_positions(store, backend, opts) == 0
    again, summary = _run(store, backend, 300)
    assert backend.calls == calls
    assert again.sources == first.sources
    assert (summary.baseline_cached, summary.baseline_fetched, summary.baseline_failed) == (300, 0, 0)
    assert _run(store, backend, 300)[0].sources == first.sources
    assert backend.calls == calls


def test_a_larger_n_extends_the_stored_sample(store, corpus):
    backend = LocalBackend([corpus[0]])
    _run(store, backend, 300)
    before = _rows(store, "local")
    assert missing_baseline_positions(store, backend, ProvenanceOptions(baseline_positions=700)) == 401
    calls = backend.calls
    baseline, summary = _run(store, backend, 700)
    after = _rows(store, "local")
    assert after[:300] == before  # same positions, documents and fetch times: not looked up again
    assert backend.calls - calls == 1 + 400
    assert (summary.baseline_cached, summary.baseline_fetched) == (300, 400) and len(baseline.sources) == 700
    # A fresh database asked for 700 at once draws the very same positions.
    other = open_store(store.path.with_name("other.duckdb"))
    try:
        _run(other, backend, 700)
        assert [(r["shard"], r["rank"], r["source"]) for r in _rows(other, "local")] == \
            [(r["shard"], r["rank"], r["source"]) for r in after]
    finally:
        other.close()
    # A smaller N reads the first positions only and sends nothing.
    calls = backend.calls
    small, _ = _run(store, backend, 100)
    assert small.sources == baseline.sources[:100] and backend.calls == calls


def test_local_lookups_resolve_every_rank_and_refuse_bad_ones(corpus):
    backend = LocalBackend([corpus[0]])
    sizes = backend.shard_sizes()
    last = backend.doc_at(0, sizes[0] - 1)   # the largest suffix sits on a document separator
    assert last.metadata["metadata"]["source"] in _SOURCES
    with pytest.raises(QueryFailed, match="out of range"):
        backend.doc_at(0, sizes[0])
    with pytest.raises(QueryFailed, match="out of range"):
        backend.doc_at(len(sizes), 0)


def test_api_failed_lookups_are_stored_as_failed_and_retried(store, corpus):
    index_dir, _ = corpus
    with serve([index_dir]) as srv:
        backend = ApiBackend("test_index", srv.url, FAST_HTTP)
        srv.type_faults["get_doc_by_rank"].extend(["error200", "missing", "error200", "missing", "error200"])
        baseline, summary = _run(store, backend, 60)
        rows = _rows(store, "api")
        failed = [r for r in rows if r["status"] == "failed"]
        assert len(rows) == 60 and len(failed) == 5 and summary.baseline_failed == 5
        assert all(r["source"] is None and r["doc_ix"] is None and r["error"] for r in failed)
        reasons = {r["error"].split(":")[0] for r in failed}
        assert reasons == {"HTTP 200", "answer lacks field(s) doc_ix, doc_len, metadata"}
        assert baseline.failed == 5 and len(baseline.sources) == 55 and not baseline.complete
        assert store.query("SELECT sum(positions) FROM corpus_baselines WHERE backend = 'api'")[0][0] == 55
        # The request the real API takes: the empty query, no needle, the minimum display length.
        lookup = next(p for p in srv.payloads if p["query_type"] == "get_doc_by_rank")
        assert lookup["query"] == "" and lookup["max_disp_len"] == 1 and lookup["index"] == "test_index"

        srv.queries.clear()
        retried, summary = _run(store, backend, 60)
        # Only the failed positions are asked again, from their stored (shard, rank): no shard-size request.
        assert srv.queries == [("get_doc_by_rank", "")] * 5
        assert retried.complete and summary.baseline_fetched == 5 and summary.baseline_cached == 55
        by_no = {r["sample_no"]: r for r in _rows(store, "api")}
        for r in failed:
            assert by_no[r["sample_no"]]["status"] == "ok"
            assert (by_no[r["sample_no"]]["shard"], by_no[r["sample_no"]]["rank"]) == (r["shard"], r["rank"])

    # The API's answers agree with the local engine over the same index, position by position.
    _run(store, LocalBackend([index_dir]), 60)
    assert [(r["shard"], r["rank"], r["doc_ix"], r["source"]) for r in _rows(store, "api")] == \
        [(r["shard"], r["rank"], r["doc_ix"], r["source"]) for r in _rows(store, "local")]


def test_api_shard_sizes_failure_stores_nothing_and_the_next_run_draws(store, corpus):
    with serve([corpus[0]]) as srv:
        backend = ApiBackend("test_index", srv.url, FAST_HTTP)
        srv.type_faults["find"].append("error200")
        baseline, summary = _run(store, backend, 20)
        assert baseline.error.startswith("shard sizes: HTTP 200") and baseline.sources == []
        assert summary.baseline_failed == 1 and _rows(store, "api") == []
        assert srv.queries == [("find", "")]
        baseline, _ = _run(store, backend, 20)
        assert baseline.complete and baseline.error is None and len(_rows(store, "api")) == 20


def test_api_down_gives_up_after_failures_in_a_row(store, corpus):
    with serve([corpus[0]]) as srv:
        backend = ApiBackend("test_index", srv.url, FAST_HTTP)
        srv.type_faults["get_doc_by_rank"].extend(["error200"] * 100)
        with pytest.raises(FpprovError, match="stopped after 4 failed queries in a row"):
            _run(store, backend, 50, give_up_after=4)
        rows = _rows(store, "api")
        assert 4 <= len(rows) < 50 and all(r["status"] == "failed" and r["source"] is None for r in rows)


def test_mini_has_no_baseline_and_sends_nothing(store, corpus):
    with serve([corpus[0]], dialect="mini", indexes=("v2_test",)) as srv:
        backend = MiniBackend("v2_test", srv.url, FAST_HTTP)
        baseline, summary = _run(store, backend, 100)
        assert "infini-gram-mini" in baseline.unavailable and "no source baseline" in baseline.unavailable
        assert baseline.sources == [] and not baseline.complete and summary.baseline_wanted == 0
        opts = ProvenanceOptions(baseline_positions=100)
        assert _run(store, backend, 100)[0].unavailable == baseline.unavailable
        assert missing_baseline_positions(store, backend, opts) == 0
        assert srv.posts == 0 and backend.calls == 0 and _rows(store, "mini") == []


class _Recording(ProvenanceProgress):
    def __init__(self):
        self.phases, self.advanced = [], 0

    def phase(self, name: str, total: int, cached: int = 0) -> None:
        self.phases.append((name, total, cached))

    def advance(self, n: int = 1) -> None:
        self.advanced += n


def test_progress_counts_the_cached_positions_and_each_lookup(store, corpus):
    backend = LocalBackend([corpus[0]])
    _run(store, backend, 30)
    progress = _Recording()
    look_up_baseline(store, backend, 45, 0, "source", ProvenanceOptions(), progress, RunSummary("local"))
    assert progress.phases == [(f"baseline {backend.index_name}", 45, 30)] and progress.advanced == 15


def test_a_stored_position_the_seed_no_longer_draws_is_looked_up_again(store, corpus):
    # An index that changed under its name (the API's) draws other positions: the stale rows are replaced.
    backend = LocalBackend([corpus[0]])
    _run(store, backend, 20)
    store.con.execute("UPDATE baseline_positions SET rank = rank + 1, source = 'stale' WHERE sample_no = 3")
    calls = backend.calls
    _run(store, backend, 25)
    assert backend.calls - calls == 1 + 5 + 1   # the shard sizes, the 5 new positions, the stale one
    drawn = sample_baseline_positions(backend.shard_sizes(), 25, 0)
    assert [(r["shard"], r["rank"]) for r in _rows(store, "local")] == [(p.shard, p.rank) for p in drawn]
    assert "stale" not in {r["source"] for r in _rows(store, "local")}
