"""`fpprov provenance`, `fpprov indexes` and `fpprov index build`.

The library (provenance, evidence with scipy, corpus backends, duckdb) loads inside the commands, not at CLI
start: `fpprov --help` stays fast."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..corpus.catalog import BACKENDS
from ..errors import FpprovError
from .common import App, DbOption, cell, console, db_path, err_console, esc, user_errors

if TYPE_CHECKING:
    from ..provenance import RunSummary
    from ..provenance.options import RunEstimate


def parse_ladder(ngram: int, ladder: Optional[str]) -> tuple[int, ...]:
    if ladder is None:
        return (ngram,)
    try:
        values = tuple(sorted({int(v) for v in ladder.split(",") if v.strip()}))
    except ValueError:
        raise FpprovError(f"--ladder takes comma-separated integers, e.g. 1,2,5,10 (got {ladder!r})") from None
    if not values or values[0] < 1:
        raise FpprovError("--ladder values must be positive integers")
    return values


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed or 0:,.0f}/s {task.fields.get('cached', 0):,} hits")


def duration(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def plan_lines(estimate: "RunEstimate") -> list[str]:
    """What a run will send to one index, said before it sends anything; a second line when it is over the hour."""
    from ..provenance.budget import over_budget, power_line

    e = estimate
    power = [f"  {power_line(e)}"] if power_line(e) else []
    taken = (f"all {e.fp_total:,} FPs" if e.fps == e.fp_total
             else f"{e.fps:,} of {e.fp_total:,} FPs ({e.sample_rule})")
    if e.controls:
        taken += f", up to {e.controls:,} controls"
    if e.requests == 0:
        return [f"{e.index_name}: {taken}; nothing to send (all cached)", *power]
    parts = [f"{e.count_queries:,} count queries ({e.cached_queries:,} cached)"]
    if e.doc_requests:
        parts.append(f"up to {e.doc_requests:,} document requests")
    if e.baseline_requests:
        parts.append(f"{e.baseline_requests:,} baseline lookups")
    when = "no rate limit" if e.seconds is None else f"{duration(e.seconds)} at {e.rate:.1f} requests/s"
    lines = [f"{e.index_name}: {taken}; {', '.join(parts)}: {when}"]
    if over_budget(e):
        lines.append(f"  that is more than an hour ({e.requests:,} requests, {duration(e.seconds)}): take fewer FPs "
                     f"with --max-tokens N (now {e.fps:,}), or skip documents with --docs 0 "
                     f"({e.doc_requests:,} of the requests)")
    return lines + power


class RichProgress:
    """fpprov.provenance.ProvenanceProgress's hooks: shows the plan of each index, then each phase (counts,
    documents) with queries/s and cache hits."""

    def __init__(self, progress: Progress):
        self.progress, self.task, self.started = progress, None, False

    def phase(self, name: str, total: int, cached: int = 0) -> None:
        if not self.started:  # drawn from the first phase on: an error before it is one line, no blank bar
            self.progress.start()
            self.started = True
        self.task = self.progress.add_task(esc(name), total=total, completed=cached, cached=cached)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def planned(self, estimate: "RunEstimate") -> None:
        for line in plan_lines(estimate):  # soft wrap: one line each however narrow the terminal
            self.progress.console.print(line, markup=False, highlight=False, soft_wrap=True)


def provenance(
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", metavar="MODEL", help="Model(s) to trace (default: every scanned model)."),
    db: Optional[Path] = DbOption,
    backend: str = typer.Option("api", metavar="BACKEND", help="api (infini-gram API) | mini (infini-gram-mini) | local (--index-dir)."),
    index: Optional[List[str]] = typer.Option(
        None, metavar="NAME", help="Index name, repeatable: every model is traced in each and the indexes are ranked by FP-vs-control "
                   "AUC (default: each model's alias default; local: a label for a single --index-dir)."),
    index_dir: Optional[List[Path]] = typer.Option(
        None, "--index-dir", metavar="DIR", help="Local index folder, repeatable: each is an index of its own, ranked like --index."),
    ngram: int = typer.Option(10, min=1, help="Repetitions of the token text in the query."),
    ladder: Optional[str] = typer.Option(None, metavar="N,N,...", help="Several n at once, e.g. 1,2,5,10,20 (overrides --ngram)."),
    docs: int = typer.Option(20, min=0, help="Documents to sample per largest-n query with count >= --min-count "
                                             "(0: none)."),
    controls: Optional[int] = typer.Option(
        None, min=0, max=20, metavar="K", show_default=False,
        help="Matched non-FP controls per FP (0: no comparison). Default: 19 on a local index (enough for "
             "repetition_enriched to fire in any frequency bin), 1 on api/mini (each control costs requests)."),
    max_tokens: Optional[int] = typer.Option(
        None, "--max-tokens", min=1, show_default=False,
        help="FPs per model and index: the top half by p(t | t) plus a uniform draw of the rest. Default: all on a "
             "local engine or with --rate 0, else what fits in about an hour at --rate."),
    baseline_positions: int = typer.Option(1000, min=0, help="Random corpus positions behind each index's "
                                                             "source baseline."),
    min_count: int = typer.Option(1, min=1, help="Only sample documents for counts at least this large."),
    seed: int = typer.Option(0, help="Sampling seed: the same seed picks the same documents."),
    source_field: str = typer.Option("source", metavar="FIELD", help="Metadata field naming a document's source (else its path)."),
    context: int = typer.Option(100, min=0, help="Snippet characters each side of the match."),
    concurrency: int = typer.Option(2, min=1, max=8, help="Requests in flight (HTTP backends)."),
    rate: float = typer.Option(2.0, min=0.0, help="Requests per second at most (0: no limit)."),
    timeout: float = typer.Option(60.0, min=0.1, help="Seconds to wait for an answer."),
    retries: int = typer.Option(7, min=0, help="Retries with exponential backoff (up to 60 s) on 403/429/5xx/connection errors."),
    give_up_after: int = typer.Option(20, min=0, help="Stop after this many failed queries in a row (0: never)."),
    api_url: Optional[str] = typer.Option(None, "--api-url", metavar="URL", show_default=False,
                                          help="Base URL of the backend's server (mirrors, tests); else "
                                               "FPPROV_API_URL (api) / FPPROV_MINI_URL (mini), else the public one."),
    training_data: bool = typer.Option(False, "--training-data", help="The index holds the traced models' own "
                                       "training data (default: only when the model's alias or the local index's "
                                       "fpprov-index.json names it so; else a proxy)."),
    proxy: bool = typer.Option(False, "--proxy", help="Call the index a proxy (not the models' training data) "
                               "even where an alias or index manifest names it as their training data."),
) -> None:
    """Count each FP token's text repeated n times in a training corpus; sample documents and sources."""
    if backend not in BACKENDS:
        raise FpprovError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if training_data and proxy:
        raise FpprovError("--training-data and --proxy contradict each other: pass one of them (or neither, to "
                          "let the alias or the index manifest decide)")
    from .. import provenance as prov
    from ..corpus.http import HttpSettings
    from ..db.store import open_store
    from ..runtime.distributed import Ranks  # torch loads with the command's work, not at CLI start

    Ranks.from_env().require_single("provenance", "its work is corpus queries, written by one process")
    options = prov.ProvenanceOptions(ladder=parse_ladder(ngram, ladder), docs=docs, controls=controls,
                                     max_tokens=max_tokens, baseline_positions=baseline_positions,
                                     min_count=min_count, seed=seed, source_field=source_field,
                                     context_chars=context, concurrency=concurrency, give_up_after=give_up_after,
                                     training_data=True if training_data else False if proxy else None)
    http = HttpSettings(rate=rate, concurrency=concurrency, read_timeout=timeout, retries=retries)
    path = db_path(db)
    if not path.exists():  # nothing to trace, and a typo in --db must not leave an empty database behind
        raise FpprovError(f"database {path} does not exist; run `fpprov scan MODEL` first or pass --db")
    store = open_store(path)
    try:
        explain_nothing_to_trace(store, model or None)
        bar = RichProgress(Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    _RateColumn(), TimeElapsedColumn(), console=err_console, transient=False))
        try:
            summary = prov.run_provenance(store, backend=backend, models=model or None, index=index or None,
                                          index_dirs=index_dir or None, api_url=api_url, http=http,
                                          options=options, progress=bar)
        finally:
            if bar.started:
                bar.progress.stop()
        print_summary(store, summary)
    finally:
        store.close()
    if summary.failed_total:
        err_console.print(f"[bold red]{summary.failed_total} queries failed[/] (stored as failed with the reason; "
                          "rerun the same command to retry them)")
        raise typer.Exit(1)


def explain_nothing_to_trace(store, models: Optional[List[str]]) -> None:
    """Before any work: a -m that names no scanned model (with the closest scanned name), and complete scans
    that found no fixed point, are said as such (the library's own message, 'no complete scans', covers the
    rest)."""
    scanned = {m: (int(complete), int(fps)) for m, complete, fps in store.query(
        "SELECT s.model, count(DISTINCT s.scan_id) FILTER (WHERE s.complete), count(f.token_id) FILTER (WHERE "
        "s.complete) FROM scans s LEFT JOIN token_fps f ON f.scan_id = s.scan_id GROUP BY s.model")}
    for name in models or ():
        if name not in scanned:
            close = difflib.get_close_matches(name, scanned, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f" (scanned: {', '.join(sorted(scanned))})" if scanned else ""
            raise FpprovError(f"no complete scan with fixed points for {name}: the database has no scan of it{hint}")
    empty = [m for m in (models or sorted(scanned)) if scanned[m][0] and not scanned[m][1]]
    if empty and (models or not any(fps for _, fps in scanned.values())):
        raise FpprovError(f"the complete scan of {', '.join(empty)} found no fixed points: nothing to trace")


def print_summary(store, summary: "RunSummary") -> None:
    from .. import provenance as prov

    n = max(summary.ladder) if summary.ladder else "?"
    title = f"top FP tokens by count of the text x {n} ({summary.backend}: {', '.join(summary.indexes)})"
    table = Table(title=esc(title))
    for col in ("model", "token id", "token", "n", "variant", "count", "index is"):
        table.add_column(col, justify="right" if col in ("token id", "n", "count") else "left")
    for row in prov.top_rows(store, summary):
        proxy = "training data" if row["index_is_proxy"] is False else "proxy"   # never NULL; unknown is a proxy
        table.add_row(*(cell(v) for v in (row["model"], row["token_id"], repr(row["token_text"]), row["n"],
                                          row["variant"], f"{row['count']:,}", proxy)))
    console.print(table)
    for line in corpus_lines(store, summary):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    rate = summary.sent / summary.seconds if summary.seconds else 0.0
    console.print(
        f"{len(summary.models)} model(s), {summary.entries:,} entries ({summary.not_queryable:,} not queryable), "
        f"{summary.queries:,} queries: {summary.cached:,} cached, {summary.sent:,} sent ({summary.ok:,} ok, "
        f"{summary.failed:,} failed), {rate:,.0f} queries/s; documents: {summary.docs_fetched:,} fetched, "
        f"{summary.docs_cached:,} cached, {summary.docs_failed:,} failed; {summary.requests:,} backend calls "
        f"in {summary.seconds:.1f}s", markup=False)
    if summary.failures:
        failures = Table(title="failures (first few)")
        failures.add_column("query")
        failures.add_column("reason")
        for query, reason in summary.failures[:10]:
            failures.add_row(cell(repr(query[:60])), cell(reason))
        console.print(failures)


def corpus_lines(store, summary: "RunSummary") -> list[str]:
    """What each index traced is to each model: a proxy (not its training data) or its training data, and how
    that was decided, one line per index (the table's 'index is' column says it per row)."""
    if not summary.indexes or not summary.models:
        return []
    rows = store.query(
        f"SELECT index_name, index_is_proxy, list(model ORDER BY model) FROM traced_indexes WHERE backend = ? "
        f"AND index_name IN ({', '.join('?' for _ in summary.indexes)}) "
        f"AND model IN ({', '.join('?' for _ in summary.models)}) GROUP BY ALL ORDER BY ALL",
        [summary.backend, *summary.indexes, *summary.models])
    return [f"{index}: " + (f"proxy: not the training data of {', '.join(models)} (--training-data says otherwise)"
                            if proxy else f"the training data of {', '.join(models)} (--proxy says otherwise)")
            for index, proxy, models in rows]


def indexes(
    backend: str = typer.Option("all", metavar="BACKEND", help="api | mini | all"),
    api_url: Optional[str] = typer.Option(None, "--api-url", metavar="URL", help="Server base URL (else FPPROV_API_URL / FPPROV_MINI_URL)."),
    timeout: float = typer.Option(5.0, min=0.1, help="Seconds to wait for the server's own list."),
) -> None:
    """List the known indexes: the server's own list (GET /) when it answers, else the data file."""
    from ..corpus.factory import list_indexes

    chosen = [b for b in BACKENDS if b != "local"] if backend == "all" else [backend]
    for name in chosen:
        if name not in BACKENDS or name == "local":
            raise FpprovError("--backend takes api, mini or all (local indexes are folders: --index-dir)")
        rows, origin = list_indexes(name, api_url if name == "api" or backend != "all" else None, timeout)
        table = Table(title=esc(f"{name} indexes (from the {origin})"))
        for col in ("index", "tokenizer", "description"):
            table.add_column(col)
        for row in rows:
            table.add_row(cell(row["index"]), cell(row["tokenizer"]), cell(row["description"]))
        console.print(table)


def index_build(
    corpus: Path = typer.Argument(..., help="Folder of *.jsonl / *.jsonl.gz files (field 'text' plus metadata)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Index folder to create."),
    shards: int = typer.Option(1, min=1, help="Shards to split the index into."),
    mem: int = typer.Option(2, min=1, help="GiB of memory the indexer may use."),
    source_field: str = typer.Option("source", metavar="FIELD", help="Metadata field naming the source (counted in the summary)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing index folder."),
) -> None:
    """Build a local byte-level infini-gram index from your own corpus, offline."""
    from ..corpus.index_build import build_index

    with err_console.status(f"indexing {esc(corpus)} ..."):
        result = build_index(corpus, out, shards=shards, mem_gb=mem, force=force, source_field=source_field)
    console.print(f"built {result.out_dir}: {result.documents:,} documents from {result.files} file(s), "
                  f"{result.text_bytes:,} bytes, {result.shards} shard(s), {result.seconds:.1f}s", markup=False)
    if result.sources:
        shares = ", ".join(f"{k} {v}" for k, v in sorted(result.sources.items(), key=lambda kv: -kv[1]))
        console.print(f"documents per {source_field}: {shares}", markup=False)
    console.print(f"next: fpprov provenance --backend local --index-dir {result.out_dir}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("provenance")(user_errors(provenance))
    app.command("indexes")(user_errors(indexes))
    index_app = App(help="Local infini-gram indexes.", no_args_is_help=True)
    index_app.command("build")(user_errors(index_build))
    app.add_typer(index_app, name="index")
