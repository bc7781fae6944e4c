"""FP tokens against their matched controls in one index, stored: the repetition comparison (``fp_enrichment``),
each token's rate, percentile and q-value (``token_evidence``), where their documents come from against the
corpus baseline (``source_enrichment``), the draw (``control_matches``) and what was kept out
(``evidence_exclusions``). The statistics are ``fpprov.evidence``'s; this module reads the counts and documents
the run stored and writes the results, replacing the (model, backend, index)'s previous ones in one
transaction, so a rerun gives the same rows."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pyarrow as pa

from ..corpus.base import CorpusBackend
from ..evidence.effect import effect_verdict, share_difference, source_contrast
from ..evidence.repetition import repetition_evidence, self_repetition_rate
from ..evidence.sources import UNKNOWN_SOURCE, source_enrichment, token_source_enrichment, wilson_share
from ..db.store import Store
from .baselines import Baseline
from .controls import COUNT_FAILED, NOT_QUERYABLE, ControlDraw, Exclusion, ok_counts
from .options import EvidenceSummary, ProvenanceOptions
from .plan import FpToken

MEASURE = "(count(t x n) / count(t)) ^ (1 / (n - 1))"
_TABLES = ("evidence_runs", "control_matches", "evidence_exclusions", "fp_enrichment", "token_evidence",
           "source_enrichment", "source_contrast", "fp_effects")


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _documents(store: Store, corpus: CorpusBackend, queries: list[str], seed: int, docs: int) -> dict[str, list[str]]:
    """Sources of the sampled documents of each query (the first ``docs`` of the seed's sample)."""
    if not queries or docs == 0:
        return {}
    rows = store.query(
        "SELECT query, coalesce(source, ?) FROM documents WHERE backend = ? AND index_name = ? AND seed = ? "
        "AND status = 'ok' AND sample_no < ? AND query IN (SELECT unnest(?::VARCHAR[])) ORDER BY query, sample_no",
        [UNKNOWN_SOURCE, corpus.backend, corpus.index_name, seed, docs, list(set(queries))])
    out: dict[str, list[str]] = {}
    for query, source in rows:
        out.setdefault(query, []).append(source)
    return out


def _source_rows(common: dict[str, Any], scope: str, token_id: int | None, role: str, sources: Sequence[str],
                 baseline: Sequence[str | None] | None, no_baseline: str, seed: int) -> list[dict[str, Any]]:
    """Per source among ``sources``: its Wilson share, and its enrichment over the baseline with a CI."""
    if not sources:
        return []
    if scope == "pooled" and baseline:
        results = [(e.source, e.k_docs, e.baseline_share, e.enrichment, e.ci_low, e.ci_high, e.reason)
                   for e in source_enrichment(sources, baseline, seed) if e.k_docs > 0]
    else:
        results = [(e.source, e.k_docs, e.baseline_share, e.enrichment, e.ci_low, e.ci_high, e.reason)
                   for e in token_source_enrichment(sources, baseline or [])]
    rows = []
    for source, k, base_share, enrichment, low, high, reason in results:
        share, share_low, share_high = wilson_share(k, len(sources))
        rows.append({**common, "scope": scope, "token_id": token_id, "role": role, "source": source, "docs": k,
                     "sampled": len(sources), "share": share, "share_low": share_low, "share_high": share_high,
                     "baseline_share": _nan_to_none(base_share) if baseline else None,
                     "enrichment": _nan_to_none(enrichment) if baseline else None,
                     "enrichment_low": _nan_to_none(low) if baseline else None,
                     "enrichment_high": _nan_to_none(high) if baseline else None,
                     "reason": reason if baseline else no_baseline})
    return rows


def compare_with_controls(store: Store, corpus: CorpusBackend, fps: list[FpToken], fp_total: int, sample_rule: str,
                          draw: ControlDraw, baseline: Baseline, options: ProvenanceOptions,
                          evidence_queries: Mapping[int, str | None],
                          index_is_proxy: bool = True) -> EvidenceSummary | None:
    """Compute and store the evidence for one model in one index; None when no control was asked for.
    ``evidence_queries``: token id -> the query the statistics count at the largest n (the plan's emitted run
    when it is queryable and tight, else None: the token is kept out, never counted as 0)."""
    if draw.match is None:
        return None
    model = fps[0].model
    n = max(options.ladder)
    no_baseline = baseline.unavailable or "no corpus baseline position was looked up"
    base_sources = None if baseline.unavailable else baseline.sources
    common = {"model": model, "backend": corpus.backend, "index_name": corpus.index_name}
    tokens = {t.token_id: t for t in fps} | {t.token_id: t for t in draw.controls}
    role = {t.token_id: "fp" for t in fps} | {t.token_id: "control" for t in draw.controls}
    queries = {i: evidence_queries.get(i) for i in tokens if i in draw.unigram_counts}
    counts = ok_counts(store, corpus, [q for q in queries.values() if q is not None])
    exclusions = list(draw.exclusions)
    rates: dict[int, float] = {}
    repeats: dict[int, int] = {}
    for token_id, query in queries.items():
        if query is None or query not in counts:
            exclusions.append(Exclusion(token_id, role[token_id], NOT_QUERYABLE if query is None else COUNT_FAILED))
            continue
        repeats[token_id] = counts[query]
        rates[token_id] = self_repetition_rate(draw.unigram_counts[token_id], counts[query], n) if n >= 2 else math.nan
    evidence = repetition_evidence(draw.match, rates, options.seed)
    comp = evidence.comparison

    bins = {m.control_token_id: m.bin for m in draw.match.matches} | dict(draw.match.fp_bins)
    token_rows = [{**common, "token_id": tp.token_id, "role": "fp", "unigram_count": draw.unigram_counts[tp.token_id],
                   "repeat_count": repeats[tp.token_id], "rate": tp.value, "bin": tp.bin,
                   "n_bin_controls": tp.n_controls, "percentile": _nan_to_none(tp.percentile),
                   "percentile_low": _nan_to_none(tp.percentile_ci[0]), "percentile_high": _nan_to_none(tp.percentile_ci[1]),
                   "p_value": _nan_to_none(tp.p_value), "q_value": _nan_to_none(tp.q_value)}
                  for tp in evidence.tokens if tp.token_id in rates]
    token_rows += [{**common, "token_id": t.token_id, "role": "control", "unigram_count": draw.unigram_counts[t.token_id],
                    "repeat_count": repeats[t.token_id], "rate": rates[t.token_id], "bin": bins[t.token_id],
                    "n_bin_controls": None, "percentile": None, "percentile_low": None, "percentile_high": None,
                    "p_value": None, "q_value": None}
                   for t in draw.controls if t.token_id in rates]

    docs = _documents(store, corpus, [q for q in queries.values() if q], options.seed, options.docs)
    source_rows: list[dict[str, Any]] = []
    pooled: dict[str, list[str]] = {"fp": [], "control": []}
    for token_id, query in sorted(queries.items()):
        sources = docs.get(query or "", [])
        pooled[role[token_id]] += sources
        source_rows += _source_rows(common, "token", token_id, role[token_id], sources, base_sources, no_baseline,
                                    options.seed)
    for r in ("fp", "control"):
        source_rows += _source_rows(common, "pooled", None, r, pooled[r], base_sources, no_baseline, options.seed)

    base_counts = {}
    for b in base_sources or []:
        key = b if b else UNKNOWN_SOURCE
        base_counts[key] = base_counts.get(key, 0) + 1
    contrast_rows = [{**common, "source": c.source, "fp_docs": c.fp_docs, "fp_sampled": c.fp_sampled,
                      "control_docs": c.control_docs, "control_sampled": c.control_sampled,
                      "odds_ratio": _nan_to_none(c.odds_ratio), "or_low": _nan_to_none(c.or_low),
                      "or_high": _nan_to_none(c.or_high), "p_value": _nan_to_none(c.p_value),
                      "q_value": _nan_to_none(c.q_value),
                      "baseline_share": (base_counts.get(c.source, 0) / len(base_sources)) if base_sources else None}
                     for c in source_contrast(pooled["fp"], pooled["control"])]

    compared_fps = [tp.token_id for tp in evidence.tokens if tp.token_id in rates and math.isfinite(tp.value)]
    compared_controls = [t for t in draw.match.control_ids if t in rates and math.isfinite(rates[t])]
    fp_any = sum(1 for t in compared_fps if repeats[t] > 0)
    control_any = sum(1 for t in compared_controls if repeats[t] > 0)
    diff = share_difference(fp_any, len(compared_fps), control_any, len(compared_controls))
    run_row = {**common, "index_is_proxy": index_is_proxy, "n": n, "measure": MEASURE, "controls_k": options.controls, "bin_width": options.bin_width,
               "seed": options.seed, "fp_total": fp_total, "fp_sampled": len(fps), "sample_rule": sample_rule,
               "baseline_positions": len(base_sources or [])}
    enrichment_row = {**common, "n": n, "n_fp": comp.n_fp, "n_control": comp.n_control, "auc": _nan_to_none(comp.auc),
                      "auc_low": _nan_to_none(comp.auc_ci[0]), "auc_high": _nan_to_none(comp.auc_ci[1]),
                      "p_value": _nan_to_none(comp.p_value), "median_fp": _nan_to_none(comp.median_fp),
                      "median_control": _nan_to_none(comp.median_control),
                      "median_ratio": _nan_to_none(comp.median_ratio), "ratio_low": _nan_to_none(comp.median_ratio_ci[0]),
                      "ratio_high": _nan_to_none(comp.median_ratio_ci[1]), "reason": comp.reason}
    effect_row = {**common, "n_fp": len(compared_fps), "fp_any": fp_any, "n_control": len(compared_controls),
                  "control_any": control_any, "any_diff": _nan_to_none(diff.difference),
                  "any_diff_low": _nan_to_none(diff.low), "any_diff_high": _nan_to_none(diff.high),
                  "effect": effect_verdict(comp.auc, comp.auc_ci[0], comp.auc_ci[1], comp.n_fp, comp.n_control)}
    match_rows = [{**common, "fp_token_id": m.fp_token_id, "draw": m.draw, "control_token_id": m.control_token_id,
                   "bin": m.bin, "category": m.category, "fp_count": m.fp_count, "control_count": m.control_count}
                  for m in draw.match.matches]
    exclusion_rows = list({e.token_id: {**common, "token_id": e.token_id, "role": e.role, "reason": e.reason}
                           for e in exclusions}.values())
    rows = {"evidence_runs": [run_row], "control_matches": match_rows, "evidence_exclusions": exclusion_rows,
            "fp_enrichment": [enrichment_row], "token_evidence": token_rows, "source_enrichment": source_rows,
            "source_contrast": contrast_rows, "fp_effects": [effect_row]}
    with store.transaction():
        for table in _TABLES:
            store.con.execute(f"DELETE FROM {table} WHERE model = ? AND backend = ? AND index_name = ?",
                              [model, corpus.backend, corpus.index_name])
            if rows[table]:
                with store.registered("_evidence_rows", pa.Table.from_pylist(rows[table])):
                    store.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _evidence_rows")
    return EvidenceSummary(model, corpus.index_name, comp.n_fp, comp.n_control, comp.auc, comp.auc_ci[0],
                           comp.auc_ci[1], len(exclusion_rows), comp.reason)
