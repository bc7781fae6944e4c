"""Sending count queries: ``run_each`` (bounded work in flight, a failure becomes a stored reason), the
``FailureStreak`` that stops a run against a dead backend, and ``count_queries``, which sends every query the
``ngram_counts`` cache lacks and stores each answer or failure as it arrives."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any, Callable, Iterator

from ..corpus.base import CorpusBackend, QueryFailed
from ..errors import FpprovError
from ..db.store import BatchWriter, Store
from .options import ProvenanceOptions, ProvenanceProgress, RunSummary
from .plan import pending_queries

# A query that fails for a malformed answer must not stop the run: it is stored as failed with the reason.
_ANSWER_ERRORS = (QueryFailed, ValueError, TypeError, KeyError, IndexError)
_END = object()


def run_each(fn: Callable[[Any], Any], items: list[Any], concurrency: int) -> Iterator[tuple[Any, Any, str | None]]:
    """(item, result, failure reason) for each item, at most ``concurrency`` in flight, as they finish."""
    if concurrency <= 1:
        for item in items:
            try:
                yield item, fn(item), None
            except _ANSWER_ERRORS as exc:
                yield item, None, failure_reason(exc)
        return
    pool = ThreadPoolExecutor(max_workers=concurrency)
    pending: dict[Any, Any] = {}
    queue = iter(items)
    try:
        while True:
            while len(pending) < 2 * concurrency:
                item = next(queue, _END)
                if item is _END:
                    break
                pending[pool.submit(fn, item)] = item
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = pending.pop(future)
                try:
                    yield item, future.result(), None
                except _ANSWER_ERRORS as exc:
                    yield item, None, failure_reason(exc)
    finally:
        # On Ctrl-C or a fatal error: drop what has not started; do not wait here for what is in flight.
        pool.shutdown(wait=False, cancel_futures=True)


def failure_reason(exc: BaseException) -> str:
    """The one line stored for a failed query: the backend's reason, or what was wrong with its answer."""
    if isinstance(exc, QueryFailed):
        return exc.reason
    return f"bad answer ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"


def in_flight(backend: CorpusBackend, options: ProvenanceOptions) -> int:
    """Queries to keep in flight: what the options ask for, never more than the backend takes at once."""
    return min(options.concurrency, backend.concurrency)


class FailureStreak:
    """Stops a run when the backend fails every query in a row: an unreachable server would otherwise cost
    each remaining query its full retry schedule. What was not sent stays missing and the next run sends it."""

    def __init__(self, limit: int, summary: RunSummary):
        self.limit, self.summary, self.run = limit, summary, 0

    def record(self, query: str, failure: str | None) -> None:
        if failure is None:
            self.run = 0
            return
        if len(self.summary.failures) < 20:
            self.summary.failures.append((query, failure))
        self.run += 1
        if self.limit and self.run >= self.limit:
            raise FpprovError(f"stopped after {self.run} failed queries in a row (last: {failure}); the failures "
                              "are stored and the rest is not sent: rerun when the backend answers")


def count_queries(store: Store, backend: CorpusBackend, queries: list[str], options: ProvenanceOptions,
                  progress: ProvenanceProgress, summary: RunSummary) -> None:
    """Send every query without a stored 'ok' answer; store each answer or failure as it arrives."""
    todo, attempts = pending_queries(store, backend.backend, backend.index_name, queries)
    summary.queries += len(queries)
    summary.cached += len(queries) - len(todo)
    progress.phase(f"counts {backend.index_name}", len(queries), cached=len(queries) - len(todo))
    writer = BatchWriter(store, "ngram_counts", options.flush_seconds)
    streak = FailureStreak(options.give_up_after, summary)
    try:
        for query, result, failure in run_each(backend.count, todo, in_flight(backend, options)):
            row = {"backend": backend.backend, "index_name": backend.index_name, "query": query,
                   "attempts": attempts.get(query, 0) + 1, "queried_at": datetime.now()}
            if failure is None:
                row.update(status="ok", count=result.count, approx=result.approx, token_ids=result.token_ids,
                           tokens=result.tokens, latency_ms=result.latency_ms, error=None)
                summary.ok += 1
            else:
                row.update(status="failed", count=None, approx=None, token_ids=None, tokens=None,
                           latency_ms=None, error=failure)
                summary.failed += 1
            summary.sent += 1
            writer.add(row)
            progress.advance()
            streak.record(query, failure)
    finally:
        writer.flush()
