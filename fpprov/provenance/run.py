"""The whole provenance run: for each index the chosen models use, plan the rows (``plan``), send the missing
count queries (``counts``) and, with ``--docs``, sample the matching documents (``documents``); then the run's
top rows for the summary table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..aliases import load_aliases
from ..corpus.catalog import default_index_for, index_is_proxy
from ..corpus.factory import open_backend
from ..corpus.http import HttpSettings
from ..store import Store
from .counts import count_queries
from .documents import sample_documents
from .options import ProvenanceOptions, ProvenanceProgress, RunSummary
from .plan import load_fp_tokens, plan_entries, store_entries


def run_provenance(store: Store, *, backend: str = "api", models: list[str] | None = None,
                   index: str | None = None, index_dirs: list[str | Path] | None = None,
                   api_url: str | None = None, http: HttpSettings | None = None,
                   options: ProvenanceOptions | None = None, progress: ProvenanceProgress | None = None) -> RunSummary:
    """Count (and optionally sample documents for) every FP token of the chosen models' complete scans."""
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
