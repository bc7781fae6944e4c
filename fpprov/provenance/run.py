"""The whole provenance run, per index the chosen models use: take the FPs (all, or the ``--max-tokens``
sample: ``budget``), plan their rows (``plan``), say what will be sent and how long it takes, draw matched
controls (``controls``), send the missing count queries (``counts``), sample documents for the largest-n
queries (``documents``), estimate the index's source baseline (``baselines``), and compare FPs with their
controls (``comparison``); then the run's top rows for the summary table."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..models.aliases import load_aliases
from ..corpus.base import CorpusBackend
from ..corpus.catalog import default_index_for, index_is_proxy
from ..corpus.factory import open_backend
from ..corpus.index_build import MANIFEST
from ..corpus.http import HttpSettings
from ..errors import FpprovError
from ..db.store import Store
from .baselines import look_up_baseline, missing_baseline_positions
from .budget import default_max_tokens, estimate_run, select_fps
from .comparison import compare_with_controls
from .controls import ControlDraw, draw_from_counts, ok_counts, plan_pool
from .counts import count_queries
from .documents import pending_documents, sample_documents
from .options import ProvenanceOptions, ProvenanceProgress, RunSummary
from .plan import (drop_legacy_rows, evidence_query, load_fp_tokens, pending_queries, plan_entries, replace_controls,
                   store_entries)
from .spellings import Speller


def _queries(entries: list[dict[str, Any]], n: int | None = None) -> list[str]:
    return list(dict.fromkeys(e["query"] for e in entries if e["query"] is not None and (n is None or e["n"] == n)))


def index_manifest(dirs: list[Path] | None) -> dict[str, Any] | None:
    """The ``fpprov-index.json`` manifest of a local index (its ``training_data_of`` / ``proxy`` fields say whose
    training data it is), or None."""
    for d in dirs or []:
        path = Path(d) / MANIFEST
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        return data if isinstance(data, dict) else None
    return None


def _trace_index(store: Store, corpus: CorpusBackend, tokens_by_model: dict, models: list[str], aliases: dict,
                 options: ProvenanceOptions, progress: ProvenanceProgress, summary: RunSummary,
                 manifest: dict[str, Any] | None = None) -> None:
    """Everything the run does for one index: plan, say what will be sent, send, compare."""
    options = options.for_backend(corpus.backend)
    ladder = tuple(sorted(set(options.ladder) | ({1} if options.controls else set())))
    top_n = max(ladder)
    budget = (options.max_tokens if options.max_tokens is not None
              else default_max_tokens(corpus, options, models=len(models)))
    capped = budget is not None   # a rate-limited backend: a small candidate pool, not the whole vocabulary
    picked = []
    entries: list[dict[str, Any]] = []
    spellers: dict[str, Speller] = {}
    for model in models:
        selection = select_fps(tokens_by_model[model], budget, options.seed)
        proxy = index_is_proxy(corpus.backend, corpus.index_name, aliases.get(model), model=model,
                               manifest=manifest, training_data=options.training_data)
        spellers[model] = Speller.for_model(store, model)
        pool = plan_pool(store, corpus, list(selection.tokens), capped, options, spellers[model])
        picked.append((model, selection, proxy, pool))
        entries += plan_entries(selection.tokens, corpus, proxy, ladder, spellers[model])

    # What will be sent, from the cache as it stands: the controls are drawn now when their pool is counted.
    fp_queries = _queries(entries)
    planned = set(fp_queries)
    pool_queries = [q for q in dict.fromkeys(q for *_, pool in picked for q in pool.queries) if q not in planned]
    fp_pending = len(pending_queries(store, corpus.backend, corpus.index_name, fp_queries)[0])
    pool_pending = len(pending_queries(store, corpus.backend, corpus.index_name, pool_queries)[0])
    draws = {}
    controls_pending = None
    if pool_pending == 0 and fp_pending == 0 or not options.controls:
        draws = _draw_all(store, corpus, picked, ladder, options, spellers)
        control_queries = [q for d in draws.values() for q in _queries(d[1]) if q not in planned]
        controls_pending = len(pending_queries(store, corpus.backend, corpus.index_name, control_queries)[0])
    doc_queries = _queries(entries + [e for d in draws.values() for e in d[1]], top_n)
    pending_docs = pending_documents(store, corpus, doc_queries, options) if draws or not options.controls else None
    progress.planned(estimate_run(
        corpus, [s for _, s, _, _ in picked], options, cached_queries=len(fp_queries) - fp_pending,
        pending_queries=fp_pending, pool_pending=pool_pending, controls_pending=controls_pending,
        pending_docs=pending_docs,
        baseline_missing=missing_baseline_positions(store, corpus, options) if options.controls else 0,
        pool_candidates=sum(len(pool.pool) for *_, pool in picked)))

    for model in models:
        drop_legacy_rows(store, model, corpus)
    store_entries(store, entries)
    if options.controls:
        count_queries(store, corpus, list(dict.fromkeys(fp_queries + pool_queries)), options, progress, summary)
        draws = draws or _draw_all(store, corpus, picked, ladder, options, spellers)
    for model, (draw, control_entries) in draws.items():
        replace_controls(store, model, corpus, control_entries)
        entries += control_entries
        summary.controls += len(draw.controls)
    summary.entries += len(entries)
    summary.not_queryable += sum(1 for e in entries if not e["queryable"])
    count_queries(store, corpus, _queries(entries), options, progress, summary)
    if options.docs > 0:
        sample_documents(store, corpus, _queries(entries, top_n), options, progress, summary)
    if not options.controls:
        return
    baseline = look_up_baseline(store, corpus, options.baseline_positions, options.seed, options.source_field,
                                options, progress, summary)
    for model, selection, proxy, _ in picked:
        counted = evidence_query([e for e in entries if e["model"] == model], top_n)
        result = compare_with_controls(store, corpus, list(selection.tokens), selection.total, selection.rule,
                                       draws[model][0], baseline, options, counted, index_is_proxy=proxy)
        if result is not None:
            summary.evidence.append(result)


def _draw_all(store: Store, corpus: CorpusBackend, picked: list, ladder: tuple[int, ...], options: ProvenanceOptions,
              spellers: dict[str, Speller]) -> dict[str, tuple[ControlDraw, list[dict[str, Any]]]]:
    """Each model's controls from the stored unigram counts, with their planned provenance rows."""
    draws = {}
    for model, _, proxy, pool in picked:
        draw = draw_from_counts(pool, ok_counts(store, corpus, pool.queries), options)
        draws[model] = draw, plan_entries(draw.controls, corpus, proxy, ladder, spellers[model], role="control")
    return draws


def _index_groups(backend: str, models: list[str], indexes: list[str], index_dirs: list[str | Path] | None,
                  aliases: dict) -> list[tuple[str | None, list[Path] | None, list[str]]]:
    """(index name, local dirs, models) per index to trace: every local --index-dir is an index of its own, every
    --index is traced for every model, and without one each model goes to its alias's default index."""
    if backend == "local":
        dirs = [Path(d) for d in index_dirs or []]
        if indexes and len(dirs) > 1:
            raise FpprovError("--index labels a single --index-dir; with several, each is named by its folder")
        return [(indexes[0] if indexes else None, [d], models) for d in dirs] or [(None, None, models)]
    if indexes:
        return [(name, None, models) for name in dict.fromkeys(indexes)]
    groups: dict[str, list[str]] = {}
    for model in models:
        groups.setdefault(default_index_for(model, backend, aliases.get(model)), []).append(model)
    return [(name, None, group) for name, group in groups.items()]


def run_provenance(store: Store, *, backend: str = "api", models: list[str] | None = None,
                   index: str | list[str] | None = None, index_dirs: list[str | Path] | None = None,
                   api_url: str | None = None, http: HttpSettings | None = None,
                   options: ProvenanceOptions | None = None, progress: ProvenanceProgress | None = None) -> RunSummary:
    """Count, sample documents for, and compare with matched controls every FP token of the chosen models'
    complete scans (or the ``--max-tokens`` sample of them), in one or more indexes."""
    options = options or ProvenanceOptions()
    progress = progress or ProvenanceProgress()
    options.check()
    started = time.perf_counter()
    tokens_by_model = load_fp_tokens(store, models)
    aliases = load_aliases()
    summary = RunSummary(backend=backend, models=sorted(tokens_by_model), ladder=tuple(sorted(options.ladder)))
    indexes = [index] if isinstance(index, str) else list(index or [])
    groups = _index_groups(backend, sorted(tokens_by_model), indexes, index_dirs, aliases)
    http = http or HttpSettings(concurrency=options.concurrency)
    for name, dirs, group_models in groups:
        corpus = open_backend(backend, name, index_dirs=dirs, api_url=api_url, settings=http)
        try:
            summary.indexes.append(corpus.index_name)
            _trace_index(store, corpus, tokens_by_model, group_models, aliases, options, progress, summary,
                         index_manifest(dirs))
            summary.requests += corpus.calls
        finally:
            corpus.close()
    summary.seconds = time.perf_counter() - started
    return summary


def top_rows(store: Store, summary: RunSummary, limit: int = 10) -> list[dict[str, Any]]:
    """The run's highest counts at its largest n (the repetition is what matters; at n = 1 single letters
    win), one row per (model, token): the spelling the statistics count (the emitted run), never a loose one."""
    if not summary.indexes or not summary.ladder:
        return []
    marks = ", ".join("?" for _ in summary.indexes)
    model_marks = ", ".join("?" for _ in summary.models)
    return store.query_dicts(
        "SELECT model, token_id, token_text, n, variant, query, count, index_name, index_is_proxy "
        "FROM provenance_counts "
        f"WHERE backend = ? AND index_name IN ({marks}) AND model IN ({model_marks}) AND status = 'ok' AND n = ? "
        "AND role = 'fp' AND count > 0 AND variant = 'emitted' AND NOT loose "
        "QUALIFY row_number() OVER (PARTITION BY model, token_id, index_name ORDER BY count DESC, variant) = 1 "
        "ORDER BY count DESC, model, token_id LIMIT ?",
        [summary.backend, *summary.indexes, *summary.models, max(summary.ladder), limit])
