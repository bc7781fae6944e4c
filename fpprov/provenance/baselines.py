"""Each index's source baseline: the documents at N uniformly random corpus positions and their sources,
stored per position in ``baseline_positions`` so that a rerun sends nothing.

Positions come from ``sample_baseline_positions`` (a shard drawn in proportion to its size, a uniform rank in
it) with the run's seed. Its stream is prefix-stable, so position ``sample_no`` is the same for every N: a
larger N only looks up the new positions. The shard sizes cost one request, sent only when some position was
never drawn; a failed lookup keeps its stored (shard, rank) and is retried from there by the next run, and is
never counted as a source. A backend that cannot look up random positions (infini-gram-mini) gives the index
no baseline, with the reason, and nothing is sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..corpus.base import BaselineUnavailable, CorpusBackend, PositionDoc, parse_metadata, source_of
from ..evidence.sources import sample_baseline_positions
from ..db.store import BatchWriter, Store
from .counts import FailureStreak, in_flight, run_each
from .options import ProvenanceOptions, ProvenanceProgress, RunSummary


@dataclass(frozen=True)
class Baseline:
    """One index's baseline as stored after this run."""

    backend: str
    index_name: str
    seed: int
    wanted: int                      # positions asked for
    sources: list[str | None]        # the source of each position looked up ok, in sample order (None: unknown)
    failed: int                      # positions whose lookup failed or was not sent (the next run retries them)
    unavailable: str | None = None   # why this index has no baseline at all (then sources is empty)
    error: str | None = None         # why positions could not be drawn this run (the shard sizes failed)

    @property
    def complete(self) -> bool:
        return self.unavailable is None and len(self.sources) == self.wanted


@dataclass(frozen=True)
class _Stored:
    shard: int
    rank: int
    ok: bool


def _stored(store: Store, corpus: CorpusBackend, positions: int, seed: int) -> dict[int, _Stored]:
    rows = store.query(
        "SELECT sample_no, shard, rank, status FROM baseline_positions "
        "WHERE backend = ? AND index_name = ? AND seed = ? AND sample_no < ?",
        [corpus.backend, corpus.index_name, seed, positions])
    return {int(no): _Stored(int(shard), int(rank), status == "ok") for no, shard, rank, status in rows}


def missing_baseline_positions(store: Store, corpus: CorpusBackend, options: ProvenanceOptions) -> int:
    """Requests ``look_up_baseline`` would send at most: one per position not stored ok, plus the shard sizes
    when some position was never drawn; 0 where the backend gives no baseline."""
    positions = options.baseline_positions
    if corpus.baseline_unavailable or positions <= 0:
        return 0
    stored = _stored(store, corpus, positions, options.seed)
    todo = sum(not row.ok for row in stored.values()) + positions - len(stored)
    return todo + (len(stored) < positions)


def _result(store: Store, corpus: CorpusBackend, positions: int, seed: int, source_field: str, *,
            unavailable: str | None = None,
            error: str | None = None) -> Baseline:
    if unavailable:
        return Baseline(corpus.backend, corpus.index_name, seed, positions, [], 0, unavailable=unavailable)
    rows = store.query(
        "SELECT source, source_field, metadata FROM baseline_positions WHERE backend = ? AND index_name = ? "
        "AND seed = ? AND sample_no < ? AND status = 'ok' ORDER BY sample_no",
        [corpus.backend, corpus.index_name, seed, positions])
    # A position stored under another --source-field is read again from its stored metadata, not fetched.
    sources = [source if field == source_field else source_of(parse_metadata(metadata), source_field)
               for source, field, metadata in rows]
    return Baseline(corpus.backend, corpus.index_name, seed, positions, sources, positions - len(rows), error=error)


def _shard_sizes(corpus: CorpusBackend) -> tuple[list[int] | None, str | None]:
    """The shard sizes, or why the request failed (a malformed answer is a failure, as for every query)."""
    (_, sizes, failure), = run_each(lambda _: corpus.shard_sizes(), [None], 1)
    return sizes, failure


def look_up_baseline(store: Store, corpus: CorpusBackend, positions: int, seed: int, source_field: str,
                     options: ProvenanceOptions, progress: ProvenanceProgress, summary: RunSummary) -> Baseline:
    """Look up every one of the first ``positions`` positions not stored ok (with the backend's concurrency,
    stopping after ``options.give_up_after`` failures in a row); store each answer or failure as it arrives;
    return the baseline as stored."""
    if corpus.baseline_unavailable:
        return _result(store, corpus, positions, seed, source_field, unavailable=corpus.baseline_unavailable)
    if positions <= 0:
        return _result(store, corpus, 0, seed, source_field)
    stored = _stored(store, corpus, positions, seed)
    cached = sum(row.ok for row in stored.values())
    summary.baseline_wanted += positions
    summary.baseline_cached += cached
    progress.phase(f"baseline {corpus.index_name}", positions, cached=cached)
    streak = FailureStreak(options.give_up_after, summary)

    jobs = [(no, row.shard, row.rank) for no, row in stored.items() if not row.ok]
    error = None
    try:
        if len(stored) < positions:
            sizes, failure = _shard_sizes(corpus)
            if failure is None and not sum(sizes):
                return _result(store, corpus, positions, seed, source_field, unavailable="the index reports no tokens")
            if failure is None:
                drawn = sample_baseline_positions(sizes, positions, seed)
                # A stored position the seed no longer draws: the index changed under its name; look it up again.
                jobs = [(no, drawn[no].shard, drawn[no].rank) for no in range(positions)
                        if no not in stored or not stored[no].ok
                        or (stored[no].shard, stored[no].rank) != (drawn[no].shard, drawn[no].rank)]
            else:
                error = f"shard sizes: {failure}"
                summary.baseline_failed += 1
                streak.record("baseline shard sizes", error)
        _look_up(store, corpus, sorted(jobs), seed, source_field, options, progress, summary, streak)
    except BaselineUnavailable as exc:   # a backend that only finds out when asked
        return _result(store, corpus, positions, seed, source_field, unavailable=str(exc))
    return _result(store, corpus, positions, seed, source_field, error=error)


def _look_up(store: Store, corpus: CorpusBackend, jobs: list[tuple[int, int, int]], seed: int, source_field: str,
             options: ProvenanceOptions, progress: ProvenanceProgress, summary: RunSummary,
             streak: FailureStreak) -> None:
    """Resolve each (sample_no, shard, rank) to its document's source; store every answer or failure."""
    def look_up(job: tuple[int, int, int]) -> PositionDoc:
        return corpus.doc_at(job[1], job[2])

    writer = BatchWriter(store, "baseline_positions", options.flush_seconds)
    try:
        for (no, shard, rank), doc, failure in run_each(look_up, jobs, in_flight(corpus, options)):
            row: dict[str, Any] = {"backend": corpus.backend, "index_name": corpus.index_name, "seed": seed,
                                   "sample_no": no, "shard": shard, "rank": rank, "fetched_at": datetime.now()}
            if failure is None:
                row.update(status="ok", error=None, doc_ix=doc.doc_ix, metadata=json.dumps(doc.metadata),
                           source_field=source_field, source=source_of(doc.metadata, source_field))
                summary.baseline_fetched += 1
            else:
                row.update(status="failed", error=failure, doc_ix=None, metadata=None, source_field=None, source=None)
                summary.baseline_failed += 1
            writer.add(row)
            progress.advance()
            streak.record(f"baseline position {no}", failure)
    finally:
        writer.flush()
