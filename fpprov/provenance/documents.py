"""Documents behind a count: a reproducible sample of the matches of each query, with snippet, metadata and
source, stored in ``documents``.

Sampling is a lazily drawn Fisher-Yates permutation of the match ranks, seeded by (seed, query): the same
seed always picks the same matches, and a larger ``--docs`` extends the sample without changing its start,
so stored documents stay valid and only the new ones are fetched.
"""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any

import pyarrow as pa

from ..corpus.base import CorpusBackend, source_of
from ..db.store import BatchWriter, Store
from .counts import FailureStreak, in_flight, run_each
from .options import ProvenanceOptions, ProvenanceProgress, RunSummary


def sample_positions(total: int, k: int, seed: int, query: str) -> list[int]:
    """The first min(k, total) entries of a seeded random permutation of range(total); prefix-stable in k."""
    rng = random.Random(f"{seed}\x00{query}")
    swapped: dict[int, int] = {}
    picks = []
    for i in range(min(k, total)):
        j = rng.randrange(i, total)
        picks.append(swapped.get(j, j))
        swapped[j] = swapped.get(i, i)
    return picks


def locate(position: int, segments: list[tuple[int, int]]) -> tuple[int, int]:
    """Global match number -> (shard, rank in that shard's suffix array)."""
    for shard, (lo, hi) in enumerate(segments):
        if position < hi - lo:
            return shard, lo + position
        position -= hi - lo
    raise IndexError(f"match {position} beyond the segments")


def _queries_needing_docs(store: Store, backend: CorpusBackend, queries: list[str],
                          options: ProvenanceOptions) -> list[tuple[str, int, Any, set[int]]]:
    """(query, count, stored segments, sample numbers already stored ok) for counts >= min_count."""
    wanted = pa.table({"query": pa.array(queries, pa.string())})
    with store.registered("_doc_queries", wanted):
        rows = store.query(
            "SELECT c.query, c.count, c.find_segments, "
            "  list(d.sample_no) FILTER (WHERE d.status = 'ok' AND d.sample_no < ?) "
            "FROM _doc_queries w JOIN ngram_counts c "
            "  ON c.backend = ? AND c.index_name = ? AND c.query = w.query AND c.status = 'ok' AND c.count >= ? "
            "LEFT JOIN documents d ON d.backend = c.backend AND d.index_name = c.index_name "
            "  AND d.query = c.query AND d.seed = ? "
            "GROUP BY c.query, c.count, c.find_segments ORDER BY c.count DESC, c.query",
            [options.docs, backend.backend, backend.index_name, options.min_count, options.seed])
    return [(q, int(n), seg, set(have or [])) for q, n, seg, have in rows]


def _store_segments(store: Store, backend: CorpusBackend, found: dict[str, list[tuple[int, int]]]) -> None:
    if not found:
        return
    table = pa.Table.from_pylist([{"query": q, "segs": [list(s) for s in segs]} for q, segs in found.items()],
                                 schema=pa.schema([("query", pa.string()), ("segs", pa.list_(pa.list_(pa.int64())))]))
    with store.registered("_found_segments", table):
        store.con.execute(
            "UPDATE ngram_counts SET find_segments = f.segs FROM _found_segments f "
            "WHERE ngram_counts.backend = ? AND ngram_counts.index_name = ? AND ngram_counts.query = f.query",
            [backend.backend, backend.index_name])


def refresh_sources(store: Store, backend: CorpusBackend, source_field: str) -> int:
    """Re-derive ``documents.source`` for stored documents read with another --source-field."""
    rows = store.query(
        "SELECT query, seed, sample_no, metadata FROM documents WHERE backend = ? AND index_name = ? "
        "AND status = 'ok' AND source_field IS DISTINCT FROM ?", [backend.backend, backend.index_name, source_field])
    if not rows:
        return 0
    table = pa.Table.from_pylist([
        {"query": q, "seed": s, "sample_no": n, "source": source_of(json.loads(m) if m else {}, source_field)}
        for q, s, n, m in rows])
    with store.registered("_new_sources", table):
        store.con.execute(
            "UPDATE documents SET source = t.source, source_field = ? FROM _new_sources t "
            "WHERE documents.backend = ? AND documents.index_name = ? AND documents.query = t.query "
            "AND documents.seed = t.seed AND documents.sample_no = t.sample_no",
            [source_field, backend.backend, backend.index_name])
    return len(rows)


def sample_documents(store: Store, backend: CorpusBackend, queries: list[str], options: ProvenanceOptions,
                     progress: ProvenanceProgress, summary: RunSummary) -> None:
    """Fetch the missing sampled documents of every query with count >= min_count."""
    refresh_sources(store, backend, options.source_field)
    needing = _queries_needing_docs(store, backend, queries, options)
    concurrency = in_flight(backend, options)

    # Match segments: from the cache, else one `find` per query (stored for next time).
    segments: dict[str, list[tuple[int, int]]] = {}
    to_find = []
    for query, count, stored, have in needing:
        if len(have) >= min(options.docs, count):
            continue
        if stored is not None:
            segments[query] = [(int(lo), int(hi)) for lo, hi in stored]
        else:
            to_find.append(query)
    found: dict[str, list[tuple[int, int]]] = {}
    streak = FailureStreak(options.give_up_after, summary)
    try:
        for query, result, failure in run_each(backend.find, to_find, concurrency):
            if failure is None:
                found[query] = result.segments
            else:
                summary.docs_failed += 1
            streak.record(query, None if failure is None else f"find: {failure}")
    finally:
        _store_segments(store, backend, found)
    segments.update(found)

    jobs, wanted, cached = [], 0, 0
    for query, count, _, have in needing:
        wanted += min(options.docs, count)
        cached += len(have)
        if query not in segments:
            continue
        total = sum(hi - lo for lo, hi in segments[query])
        for sample_no, position in enumerate(sample_positions(total, options.docs, options.seed, query)):
            if sample_no not in have:
                jobs.append((query, sample_no, *locate(position, segments[query])))
    summary.docs_wanted += wanted
    summary.docs_cached += cached
    progress.phase(f"documents {backend.index_name}", wanted, cached=cached)

    writer = BatchWriter(store, "documents", options.flush_seconds)

    def fetch(job: tuple[str, int, int, int]):
        query, _, shard, rank = job
        return backend.get_doc(query, shard, rank, options.context_chars)

    try:
        for (query, sample_no, shard, rank), doc, failure in run_each(fetch, jobs, concurrency):
            row: dict[str, Any] = {"backend": backend.backend, "index_name": backend.index_name, "query": query,
                                   "seed": options.seed, "sample_no": sample_no, "shard": shard, "rank": rank,
                                   "source_field": options.source_field, "fetched_at": datetime.now()}
            if failure is None:
                row.update(status="ok", error=None, doc_ix=doc.doc_ix, doc_len=doc.doc_len, disp_len=doc.disp_len,
                           needle_offset=doc.needle_offset, snippet=doc.snippet,
                           metadata=json.dumps(doc.metadata, ensure_ascii=False),
                           source=source_of(doc.metadata, options.source_field))
                summary.docs_fetched += 1
            else:
                row.update(status="failed", error=failure, doc_ix=None, doc_len=None, disp_len=None,
                           needle_offset=None, snippet=None, metadata=None, source=None)
                summary.docs_failed += 1
            writer.add(row)
            progress.advance()
            streak.record(query, None if failure is None else f"document {sample_no}: {failure}")
    finally:
        writer.flush()


def pending_documents(store: Store, backend: CorpusBackend, queries: list[str], options: ProvenanceOptions) -> int:
    """Document requests ``sample_documents`` would send for ``queries`` at most: for each counted query, one
    ``find`` unless its segments are stored plus each missing document; for a query not counted yet, 1 + docs."""
    if options.docs == 0 or not queries:
        return 0
    needing = _queries_needing_docs(store, backend, queries, options)
    requests = 0
    for _, count, stored, have in needing:
        missing = min(options.docs, count) - len(have)
        if missing > 0:
            requests += missing + (stored is None)
    wanted = pa.table({"query": pa.array(queries, pa.string())})
    with store.registered("_doc_queries", wanted):
        uncounted = store.query(
            "SELECT count(*) FROM _doc_queries w LEFT JOIN ngram_counts c ON c.backend = ? AND c.index_name = ? "
            "AND c.query = w.query AND c.status = 'ok' WHERE c.query IS NULL",
            [backend.backend, backend.index_name])[0][0]
    return requests + uncounted * (1 + options.docs)
