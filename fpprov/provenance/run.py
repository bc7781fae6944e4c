"""Provenance of fixed-point tokens: how often each FP token's text, repeated n times, occurs in a corpus.

For every FP token of every complete scan: build the queries (token text x n for each n of the ladder, in the
spelling variants that matter), send only those not yet answered (``ngram_counts`` is the cache, keyed by
backend, index and query), then sample matching documents (``provenance_docs``). Results are committed in
batches as they arrive, so a killed run loses at most a second of work and a rerun completes only what is
missing.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from ..corpus.base import MAX_REPETITIONS, CorpusBackend, QueryFailed
from ..corpus.catalog import default_index_for, index_is_proxy
from ..corpus.factory import open_backend
from ..corpus.http import HttpSettings
from ..errors import FpprovError
from ..aliases import load_aliases
from ..store import Store

VARIANTS = ("as_is", "space_added", "space_stripped")
_NO_TEXT = {
    "special": "special token: no text form",
    "byte_fragment": "byte fragment: no text form of its own",
}
# A query that fails for a malformed answer must not stop the run: it is stored as failed with the reason.
_ANSWER_ERRORS = (QueryFailed, ValueError, TypeError, KeyError, IndexError)


@dataclass
class FpToken:
    model: str
    token_id: int
    text: str | None
    category: str


@dataclass
class ProvenanceOptions:
    ladder: tuple[int, ...] = (10,)   # repetitions counted for every token (--ngram / --ladder)
    docs: int = 0                     # documents sampled per query with count >= min_count (--docs)
    min_count: int = 1
    seed: int = 0
    source_field: str = "source"      # metadata field naming a document's source
    context_chars: int = 100          # snippet characters each side of the match
    concurrency: int = 2              # queries in flight (HTTP backends)
    flush_seconds: float = 1.0        # commit buffered answers at least this often
    give_up_after: int = 20           # consecutive failed queries that stop the run (server down, offline)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every numeric option's range, checked before any database is opened or query string built."""
        ladder = tuple(self.ladder)
        if not ladder:
            raise FpprovError("--ngram / --ladder needs at least one n")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in ladder):
            raise FpprovError(f"--ngram / --ladder values must be positive integers (got {list(ladder)})")
        if max(ladder) > MAX_REPETITIONS:
            raise FpprovError(f"--ngram / --ladder n = {max(ladder)} is over the limit of {MAX_REPETITIONS} "
                              "repetitions (the api and mini take at most 1,000 characters a query)")
        for name, low in (("docs", 0), ("min_count", 1), ("context_chars", 0), ("concurrency", 1),
                          ("give_up_after", 0)):
            if getattr(self, name) < low:
                flag = {"context_chars": "context"}.get(name, name).replace("_", "-")
                raise FpprovError(f"--{flag} must be at least {low} (got {getattr(self, name)})")
        if self.concurrency > 8:
            raise FpprovError(f"--concurrency must be at most 8 (got {self.concurrency})")
        if not self.flush_seconds > 0:
            raise FpprovError(f"flush_seconds must be positive (got {self.flush_seconds})")


class ProvenanceProgress:
    """Hooks the CLI fills in with a rich progress bar; the library calls them, tests may ignore them."""

    def phase(self, name: str, total: int, cached: int = 0) -> None: ...

    def advance(self, n: int = 1) -> None: ...


@dataclass
class RunSummary:
    backend: str
    indexes: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    ladder: tuple[int, ...] = ()
    entries: int = 0           # provenance rows planned (token x n x variant)
    not_queryable: int = 0
    queries: int = 0           # distinct queryable strings
    cached: int = 0            # answered by ngram_counts, not sent
    sent: int = 0
    ok: int = 0
    failed: int = 0
    docs_wanted: int = 0
    docs_cached: int = 0
    docs_fetched: int = 0
    docs_failed: int = 0
    requests: int = 0          # calls made to the backend (HTTP requests or engine calls)
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)   # (query, reason), the first few

    @property
    def failed_total(self) -> int:
        return self.failed + self.docs_failed


# -- planning -------------------------------------------------------------------------------------

def load_fp_tokens(store: Store, models: list[str] | None = None) -> dict[str, list[FpToken]]:
    """FP tokens of complete scans, per model (a token found by several scans of a model counts once)."""
    where, params = "", []
    if models:
        where = f"AND f.model IN ({', '.join('?' for _ in models)})"
        params = list(models)
    rows = store.query(
        "SELECT f.model, f.token_id, any_value(f.text), any_value(f.category) FROM token_fps f "
        f"JOIN scans s ON s.scan_id = f.scan_id WHERE s.complete {where} "
        "GROUP BY f.model, f.token_id ORDER BY f.model, f.token_id", params)
    by_model: dict[str, list[FpToken]] = {}
    for model, token_id, text, category in rows:
        by_model.setdefault(model, []).append(FpToken(model, int(token_id), text, category))
    missing = [m for m in (models or []) if m not in by_model]
    if missing:
        raise FpprovError(f"no complete scan with fixed points for {', '.join(missing)}; run `fpprov scan` first")
    if not by_model:
        raise FpprovError("no complete scans in the database; run `fpprov scan MODEL` first")
    return by_model


def no_text_reason(token: FpToken) -> str | None:
    """Why a token has no text form to search for (recorded as not queryable, never as a zero count)."""
    if token.category in _NO_TEXT:
        return _NO_TEXT[token.category]
    if token.text is None or token.text == "":
        return "no text form: decodes to an empty string"
    if "\ufffd" in token.text:
        return "no text form: decodes to U+FFFD (part of a multi-byte character)"
    return None


def token_variants(text: str) -> list[tuple[str, str]]:
    """The token's text as decoded, plus the other spelling that matters at a word start: with the leading
    space added (a token without one) or stripped (a token with one)."""
    variants = [("as_is", text)]
    if text.startswith(" ") and text.strip():
        variants.append(("space_stripped", text[1:]))
    elif not text[:1].isspace():
        variants.append(("space_added", " " + text))
    return variants


def plan_entries(tokens: Iterable[FpToken], backend: CorpusBackend, is_proxy: bool | None,
                 ladder: Iterable[int]) -> list[dict[str, Any]]:
    """One provenance row per (token, n, variant), with its query or the reason it has none."""
    rows = []
    ladder = sorted(set(ladder))
    for token in tokens:
        common = {"model": token.model, "token_id": token.token_id, "backend": backend.backend,
                  "index_name": backend.index_name, "token_text": token.text, "category": token.category,
                  "index_is_proxy": is_proxy}
        reason = no_text_reason(token)
        if reason:
            for n in ladder:
                rows.append({**common, "n": n, "variant": "as_is", "queryable": False, "reason": reason, "query": None})
            continue
        for n in ladder:
            for variant, unit in token_variants(token.text):
                why = backend.repeated_reason(unit, n)   # before building: n copies may be far too long
                query = None if why else unit * n
                why = why or backend.unqueryable_reason(query)
                rows.append({**common, "n": n, "variant": variant, "queryable": why is None, "reason": why,
                             "query": None if why else query})
    return rows


def store_entries(store: Store, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    now = datetime.now()
    entries = pa.Table.from_pylist([{**r, "updated_at": now} for r in rows])
    with store.registered("_provenance_entries", entries):
        store.con.execute("INSERT OR REPLACE INTO provenance BY NAME SELECT * FROM _provenance_entries")


def pending_queries(store: Store, backend: str, index_name: str, queries: list[str]) -> tuple[list[str], dict[str, int]]:
    """The queries without an 'ok' answer in the cache, and the attempts already made on failed ones."""
    wanted = pa.table({"query": pa.array(queries, pa.string())})
    with store.registered("_wanted_queries", wanted):
        rows = store.query(
            "SELECT w.query, c.attempts FROM _wanted_queries w LEFT JOIN ngram_counts c "
            "ON c.backend = ? AND c.index_name = ? AND c.query = w.query "
            "WHERE c.status IS NULL OR c.status <> 'ok'", [backend, index_name])
    order = {q: i for i, q in enumerate(queries)}
    rows.sort(key=lambda r: order[r[0]])
    return [r[0] for r in rows], {r[0]: int(r[1]) for r in rows if r[1] is not None}


# -- execution ------------------------------------------------------------------------------------

def run_each(fn: Callable[[Any], Any], items: list[Any], concurrency: int) -> Iterator[tuple[Any, Any, str | None]]:
    """(item, result, failure reason) for each item, at most ``concurrency`` in flight, as they finish."""
    if concurrency <= 1:
        for item in items:
            try:
                yield item, fn(item), None
            except _ANSWER_ERRORS as exc:
                yield item, None, _reason(exc)
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
                    yield item, None, _reason(exc)
    finally:
        # On Ctrl-C or a fatal error: drop what has not started; do not wait here for what is in flight.
        pool.shutdown(wait=False, cancel_futures=True)


_END = object()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, QueryFailed):
        return exc.reason
    return f"bad answer ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"


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


class BatchWriter:
    """Buffers rows and commits them with one INSERT OR REPLACE per batch (never row by row)."""

    def __init__(self, store: Store, table: str, flush_seconds: float, max_rows: int = 5000):
        self.store, self.table = store, table
        self.flush_seconds, self.max_rows = flush_seconds, max_rows
        self.rows: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.max_rows or time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.rows:
            return
        batch, self.rows = pa.Table.from_pylist(self.rows), []
        name = f"_batch_{self.table}"
        with self.store.registered(name, batch):
            self.store.con.execute(f"INSERT OR REPLACE INTO {self.table} BY NAME SELECT * FROM {name}")


def count_queries(store: Store, backend: CorpusBackend, queries: list[str], options: ProvenanceOptions,
                  progress: ProvenanceProgress, summary: RunSummary) -> None:
    """Send every query without a stored 'ok' answer; store each answer or failure as it arrives."""
    todo, attempts = pending_queries(store, backend.backend, backend.index_name, queries)
    summary.queries += len(queries)
    summary.cached += len(queries) - len(todo)
    progress.phase(f"counts {backend.index_name}", len(queries), cached=len(queries) - len(todo))
    writer = BatchWriter(store, "ngram_counts", options.flush_seconds)
    streak = FailureStreak(options.give_up_after, summary)
    concurrency = options.concurrency if backend.backend != "local" else 1
    try:
        for query, result, failure in run_each(backend.count, todo, concurrency):
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


# -- the whole run --------------------------------------------------------------------------------

def run_provenance(store: Store, *, backend: str = "api", models: list[str] | None = None,
                   index: str | None = None, index_dirs: list[str | Path] | None = None,
                   api_url: str | None = None, http: HttpSettings | None = None,
                   options: ProvenanceOptions | None = None, progress: ProvenanceProgress | None = None) -> RunSummary:
    """Count (and optionally sample documents for) every FP token of the chosen models' complete scans."""
    from .documents import sample_documents

    options = options or ProvenanceOptions()
    progress = progress or ProvenanceProgress()
    options.check()
    started = time.perf_counter()
    tokens_by_model = load_fp_tokens(store, models)
    aliases = load_aliases()
    summary = RunSummary(backend=backend, models=sorted(tokens_by_model), ladder=tuple(sorted(options.ladder)))

    # Which index each model uses; one backend object per index.
    if backend == "local":
        groups = {index or "": sorted(tokens_by_model)}
    else:
        groups = {}
        for model in sorted(tokens_by_model):
            groups.setdefault(index or default_index_for(model, backend, aliases.get(model)), []).append(model)

    http = http or HttpSettings(concurrency=options.concurrency)
    for index_key, group_models in groups.items():
        corpus = open_backend(backend, index_key or None, index_dirs=index_dirs, api_url=api_url, settings=http)
        try:
            summary.indexes.append(corpus.index_name)
            entries = []
            for model in group_models:
                proxy = index_is_proxy(backend, corpus.index_name, aliases.get(model))
                entries += plan_entries(tokens_by_model[model], corpus, proxy, options.ladder)
            store_entries(store, entries)
            summary.entries += len(entries)
            summary.not_queryable += sum(1 for e in entries if not e["queryable"])
            queries = list(dict.fromkeys(e["query"] for e in entries if e["query"] is not None))
            count_queries(store, corpus, queries, options, progress, summary)
            if options.docs > 0:
                sample_documents(store, corpus, queries, options, progress, summary)
            summary.requests += corpus.calls
        finally:
            corpus.close()
    summary.seconds = time.perf_counter() - started
    return summary


def top_rows(store: Store, summary: RunSummary, limit: int = 10) -> list[dict[str, Any]]:
    """The run's highest counts at its largest n (the repetition is what matters; at n = 1 single letters
    win), one row per (model, token): its best variant."""
    if not summary.indexes or not summary.ladder:
        return []
    marks = ", ".join("?" for _ in summary.indexes)
    model_marks = ", ".join("?" for _ in summary.models)
    return store.query_dicts(
        "SELECT model, token_id, token_text, n, variant, query, count, index_name, index_is_proxy "
        "FROM provenance_counts "
        f"WHERE backend = ? AND index_name IN ({marks}) AND model IN ({model_marks}) AND status = 'ok' AND n = ? "
        "AND count > 0 "
        "QUALIFY row_number() OVER (PARTITION BY model, token_id, index_name ORDER BY count DESC, variant) = 1 "
        "ORDER BY count DESC, model, token_id LIMIT ?",
        [summary.backend, *summary.indexes, *summary.models, max(summary.ladder), limit])
