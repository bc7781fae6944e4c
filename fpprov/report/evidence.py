"""The evidence behind provenance claims, as report sections: per model and index, FP against matched-control
repetition (the AUC and median ratio with their CIs, an ECDF of both rates) and pooled source enrichment (a
table and a forest chart); on the shared page, the attribution matrix (models x indexes, AUC with CI).

The SQL over the evidence tables of migration 007 lives here; DuckDB does the aggregation (ECDFs arrive as
at most ECDF_POINTS quantiles per series, so a page stays small however many tokens were compared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from . import charts
from ..db.store import Store
from ..evidence.effect import MORE, effect_verdict, too_few
from ..evidence.intervals import wilson_interval
from .cells import num, table
from .sentences import PROXY_NOTE, TRAINING_NOTE, AnyRun, Parts, any_runs, corpus_parts, corpus_phrase, effect_sentence
from .text import number, text_cell, token_cell

# Quantiles per ECDF series: a larger sample is drawn from these (the curve cannot show more steps anyway).
ECDF_POINTS = 200
# Sources in the forest chart, most enriched first (the table lists them all).
FOREST_SOURCES = 12

_ROLES = {"fp": "FPs", "control": "controls"}
NO_EVIDENCE = ("No evidence yet: `fpprov provenance` with --controls compares the FPs with matched non-FP "
               "tokens and the sources of their documents with the corpus baseline.")


@dataclass
class IndexEvidence:
    """One index's block of the model page's evidence section."""
    index_name: Any           # text cell (segments) of the index name
    anchor: str               # id of the block
    summary: Parts            # the comparison in words, with effect size, CI and n (sentences.effect_sentence)
    corpus: str               # 'corpus X (proxy: not this model's training data)'
    proxy: bool               # the index is a proxy for this model's training data
    few: bool                 # too few tokens (or no CI) to say anything: shown greyed
    any_chart: Markup | None  # share of FPs vs controls with any n-fold run, Wilson CIs
    rate_hist: list[Markup]   # histograms of the non-zero log10 rates, FPs and controls
    sources_table: dict[str, Any]
    forest: Markup | None     # None when no source has an enrichment


@dataclass
class AttributionCell:
    text: str                 # 'AUC [low, high]' or '' when the model was not traced in this index
    title: str                # tooltip: n and rank
    alpha: str                # shade: how far the AUC is above 0.5
    best: bool                # rank 1 of the model's indexes
    few: bool = False         # fewer than MIN_TOKENS tokens a side or no CI: greyed, "too few to say"
    proxy: bool = True        # the index is a proxy for this model's training data


@dataclass
class AttributionRow:
    label: Any
    href: str | None
    cells: list[AttributionCell]


@dataclass
class AttributionMatrix:
    indexes: list[Any]        # column labels (text cells)
    rows: list[AttributionRow]
    empty: str


def _ci(low: float | None, high: float | None, fmt) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "no CI"
    return f"95% CI {fmt(low)}–{fmt(high)}"


def _auc(value: float) -> str:
    return f"{value:.3f}"


def _ratio(value: float) -> str:
    return number(value, 2)


def _with_ci(value: float | None, low: float | None, high: float | None, fmt=_ratio) -> list | None:
    """A numeric cell sorted by the estimate and shown as 'estimate [low, high]'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    shown = fmt(value)
    if low is not None and high is not None:
        shown += f" [{fmt(low)}, {fmt(high)}]"
    return [num(value), shown]


def _percent_with_ci(value: float | None, low: float | None, high: float | None) -> list | None:
    if value is None:
        return None
    shown = f"{100 * value:.1f}%"
    if low is not None and high is not None:
        shown += f" [{100 * low:.1f}, {100 * high:.1f}]"
    return [num(value), shown]


def _index_label(backend: str, index_name: str, ambiguous: set[str]) -> str:
    return f"{index_name} ({backend})" if index_name in ambiguous else index_name


def proxy_flags(store: Store, model: str | None = None) -> dict[tuple[str, str, str], bool]:
    """(model, backend, index) -> the index is a proxy (True unless known to be the model's training data)."""
    rows = store.query("SELECT model, backend, index_name, index_is_proxy FROM traced_indexes"
                       + (" WHERE model = ?" if model is not None else ""), [model] if model is not None else [])
    return {(m, b, i): bool(p) for m, b, i, p in rows}


def log_rate_bins(store: Store, model: str, bins: int = 20) -> dict[tuple[str, str, str], list[tuple[float, float, int]]]:
    """(backend, index, role) -> histogram bins of log10(rate) over the tokens whose rate is above 0."""
    rows = store.query("""
        SELECT backend, index_name, role, list(log10(rate) ORDER BY rate)
        FROM token_evidence WHERE model = ? AND rate > 0 GROUP BY ALL""", [model])
    out = {}
    for b, i, r, values in rows:
        lo, hi = math.floor(min(values)), max(math.ceil(max(values)), math.floor(min(values)) + 1)
        width = (hi - lo) / bins
        counts = [0] * bins
        for v in values:
            counts[min(int((v - lo) / width), bins - 1)] += 1
        out[(b, i, r)] = [(lo + j * width, lo + (j + 1) * width, c) for j, c in enumerate(counts)]
    return out


# -- SQL ------------------------------------------------------------------------------------------------
def evidence_rows(store: Store, model: str) -> list[dict[str, Any]]:
    """One row per index the model's evidence was computed in: run settings, comparison and rank."""
    return store.query_dicts("""
        SELECT backend, index_name, r.n AS run_n, r.controls_k, r.fp_total, r.fp_sampled, r.sample_rule,
               r.baseline_positions, e.n, e.n_fp, e.n_control, e.auc, e.auc_low, e.auc_high, e.p_value,
               e.median_fp, e.median_control, e.median_ratio, e.ratio_low, e.ratio_high, e.reason, a.rank, x.effect
        FROM (SELECT * FROM fp_enrichment WHERE model = ?) e
        FULL JOIN (SELECT * FROM evidence_runs WHERE model = ?) r USING (backend, index_name)
        LEFT JOIN (SELECT * FROM corpus_attribution WHERE model = ?) a USING (backend, index_name)
        LEFT JOIN (SELECT * FROM fp_effects WHERE model = ?) x USING (backend, index_name)
        ORDER BY a.rank NULLS LAST, index_name, backend
    """, [model, model, model, model])


def exclusion_counts(store: Store, model: str) -> dict[tuple[str, str], list[tuple[str, int, int]]]:
    """(backend, index) -> [(reason, FPs, controls)] of the tokens kept out of the comparison."""
    out: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for backend, index_name, reason, fps, controls in store.query("""
            SELECT backend, index_name, reason, count(*) FILTER (WHERE role = 'fp'),
                   count(*) FILTER (WHERE role <> 'fp')
            FROM evidence_exclusions WHERE model = ? GROUP BY ALL ORDER BY backend, index_name, reason""", [model]):
        out.setdefault((backend, index_name), []).append((reason, fps, controls))
    return out


def rate_quantiles(store: Store, model: str) -> dict[tuple[str, str, str], tuple[int, list[float]]]:
    """(backend, index, role) -> (tokens, sorted rates): every rate up to ECDF_POINTS tokens, else
    ECDF_POINTS + 1 quantiles at evenly spaced probabilities (an ECDF of those is the sample's ECDF)."""
    grid = "[" + ", ".join(f"{i / ECDF_POINTS:.6f}" for i in range(ECDF_POINTS + 1)) + "]"
    rows = store.query(f"""
        SELECT backend, index_name, role, count(*) AS n,
               CASE WHEN count(*) <= {ECDF_POINTS} THEN list(rate ORDER BY rate)
                    ELSE quantile_disc(rate, {grid}) END AS rates
        FROM token_evidence WHERE model = ? AND rate IS NOT NULL GROUP BY ALL""", [model])
    return {(backend, index_name, role): (n, list(rates)) for backend, index_name, role, n, rates in rows}


def pooled_sources(store: Store, model: str) -> list[dict[str, Any]]:
    return store.query_dicts("""
        SELECT backend, index_name, role, source, docs, sampled, share, share_low, share_high, baseline_share,
               enrichment, enrichment_low, enrichment_high, reason
        FROM source_enrichment WHERE model = ? AND scope = 'pooled'
        ORDER BY backend, index_name, role DESC, enrichment_low DESC NULLS LAST, share DESC, source
    """, [model])


def attribution_rows(store: Store) -> list[dict[str, Any]]:
    return store.query_dicts("SELECT model, backend, index_name, n_fp, n_control, auc, auc_low, auc_high, rank "
                             "FROM corpus_attribution ORDER BY model, rank")


# -- model page -----------------------------------------------------------------------------------------
def _exclusions_text(excluded: list[tuple[str, int, int]]) -> str:
    return "; ".join(f"{reason.replace('_', ' ')}: " + ", ".join(
        f"{count:,} {kind}" for count, kind in ((fps, "FPs"), (controls, "controls")) if count)
        for reason, fps, controls in excluded)


def _any_chart(r: dict[str, Any], runs: AnyRun | None, label: str) -> Markup | None:
    """Share of FPs and of controls with count(t x n) > 0, with Wilson 95% CIs."""
    items, muted = [], []
    if runs is None:
        return None
    for role, name, k, n in (("fp", "FPs", runs.k_fp, runs.n_fp), ("control", "controls", runs.k_control,
                                                                     runs.n_control)):
        if n:
            low, high = wilson_interval(k, n)
            items.append((f"{name}: {k:,} of {n:,}", k / n, low, high))
            muted.append(role == "control")
    if not items:
        return None
    return charts.share_intervals(items, label=f"{label}: share of tokens with any {r['n'] or r['run_n']}-fold run",
                                  x_label=f"share with count(t x {r['n'] or r['run_n']}) > 0 (95% Wilson CI)",
                                  muted=muted)


def _rate_hists(r: dict[str, Any], bins: dict, label: str) -> list[Markup]:
    out = []
    for role, name in (("fp", "FPs"), ("control", "controls")):
        b = bins.get((r["backend"], r["index_name"], role))
        if b:
            n = sum(c for _, _, c in b)
            out.append(charts.histogram(b, label=f"{label}: non-zero repetition rates of {name} (n = {n:,})",
                                        x_label=f"log10 rate of {name}, rate > 0 (n = {n:,})",
                                        y_label="tokens"))
    return out


def _sources_block(sources: list[dict[str, Any]], anchor: str, label: str,
                   page_size: int) -> tuple[dict[str, Any], Markup | None]:
    rows = [[_ROLES.get(r["role"], r["role"]), text_cell(r["source"]), num(r["docs"]), num(r["sampled"]),
             _percent_with_ci(r["share"], r["share_low"], r["share_high"]),
             None if r["baseline_share"] is None else [num(r["baseline_share"]), f"{100 * r['baseline_share']:.2f}%"],
             _with_ci(r["enrichment"], r["enrichment_low"], r["enrichment_high"]), text_cell(r["reason"])]
            for r in sources]
    tab = table(f"{anchor}-sources", [("tokens", "text"), ("source", "text"), ("docs", "num"), ("sampled", "num"),
                                      ("share [95% CI]", "num"), ("corpus share", "num"),
                                      ("enrichment [95% CI]", "num"), ("why no enrichment", "text")],
                rows, page_size=page_size, empty="no documents sampled for the pooled tokens")
    fp_rows = [r for r in sources if r["role"] == "fp" and r["enrichment"] is not None][:FOREST_SOURCES]
    if not fp_rows:
        return tab, None
    controls = {r["source"]: r for r in sources if r["role"] != "fp"}
    items, muted = [], []
    for r in fp_rows:
        # controls in grey: the reference the FPs' enrichment is read against
        for row, role in ((r, "FPs"), (controls.get(r["source"]), "controls")):
            if row is not None:
                items.append((f"{r['source']} · {role}", row["enrichment"], row["enrichment_low"],
                              row["enrichment_high"]))
                muted.append(role == "controls")
    return tab, charts.forest(items, label=f"{label}: source enrichment (share / corpus share)", muted=muted)


def evidence_section(store: Store, model: str, page_size: int) -> dict[str, Any]:
    """Context of the model page's evidence block: a summary table over indexes and one block per index."""
    runs = evidence_rows(store, model)
    excluded = exclusion_counts(store, model)
    names = [r["index_name"] for r in runs]
    ambiguous = {n for n in names if names.count(n) > 1}
    summary_rows, blocks = [], []
    shares = any_runs(store, model) if runs else {}
    bins = log_rate_bins(store, model) if runs else {}
    proxies = proxy_flags(store, model) if runs else {}
    sources = pooled_sources(store, model) if runs else []
    for i, r in enumerate(runs):
        label = _index_label(r["backend"], r["index_name"], ambiguous)
        key = (r["backend"], r["index_name"])
        sampled = (f"{r['fp_sampled']:,} of {r['fp_total']:,}: {r['sample_rule']}"
                   if r["fp_sampled"] is not None else None)
        proxy = proxies.get((model, r["backend"], r["index_name"]), True)
        few = too_few(r["n_fp"], r["n_control"], r["auc_low"], r["auc_high"])
        auc_cell = _with_ci(r["auc"], r["auc_low"], r["auc_high"], _auc)
        if auc_cell is not None and few:
            auc_cell = [auc_cell[0], f"too few to say ({auc_cell[1]})", "few"]
        summary_rows.append([
            text_cell(corpus_phrase(label, proxy)), num(r["rank"]), auc_cell,
            text_cell(r["effect"] or effect_verdict(r["auc"], r["auc_low"], r["auc_high"], r["n_fp"], r["n_control"])),
            num(r["p_value"]),
            _with_ci(r["median_ratio"], r["ratio_low"], r["ratio_high"]), num(r["n_fp"]), num(r["n_control"]),
            num(r["controls_k"]), text_cell(sampled), text_cell(_exclusions_text(excluded.get(key, []))),
            text_cell(r["reason"])])
        anchor = f"evidence-{i + 1}"
        mine = [s for s in sources if (s["backend"], s["index_name"]) == key]
        sources_table, forest = _sources_block(mine, anchor, label, page_size)
        corpus = corpus_phrase(label, proxy)
        blocks.append(IndexEvidence(index_name=text_cell(label), anchor=anchor,
                                    summary=effect_sentence(r, corpus_parts(label, proxy), shares.get(key),
                                                            r["n"] or r["run_n"])[0],
                                    corpus=corpus, proxy=proxy, few=few,
                                    any_chart=_any_chart(r, shares.get(key), label), rate_hist=_rate_hists(r, bins, label),
                                    sources_table=sources_table, forest=forest))
    evidence_table = table("evidence", [
        ("corpus", "text"), ("rank", "num"), ("AUC [95% CI]", "num"), ("what may be said", "text"), ("p", "num:3"),
        ("median ratio [95% CI]", "num"), ("FPs compared", "num"), ("controls compared", "num"),
        ("controls per FP", "num"), ("FPs sampled", "text"), ("kept out", "text"), ("why no statistic", "text")],
        summary_rows, page_size=page_size, empty=NO_EVIDENCE)
    return {"evidence_table": evidence_table, "evidence_indexes": blocks, "evidence_empty": NO_EVIDENCE}


# -- shared page ----------------------------------------------------------------------------------------
def attribution_context(store: Store, pages: dict[str, str]) -> dict[str, Any]:
    """The attribution matrix: one row per traced model, one column per index, AUC [CI] per cell, each model's
    rank-1 index highlighted."""
    rows = attribution_rows(store)
    keys = sorted({(r["backend"], r["index_name"]) for r in rows}, key=lambda k: (k[1], k[0]))
    names = [index for _, index in keys]
    ambiguous = {n for n in names if names.count(n) > 1}
    by_cell = {(r["model"], r["backend"], r["index_name"]): r for r in rows}
    order = {name: i for i, name in enumerate(pages)}
    models = sorted({r["model"] for r in rows}, key=lambda m: (order.get(m, len(order)), m))
    proxies = proxy_flags(store)
    matrix_rows = []
    for model in models:
        cells = []
        for backend, index_name in keys:
            proxy = proxies.get((model, backend, index_name), True)
            r = by_cell.get((model, backend, index_name))
            if r is None:
                cells.append(AttributionCell(text="", title="not traced in this index", alpha="0", best=False))
                continue
            auc = r["auc"]
            if auc is None or math.isnan(auc):
                cells.append(AttributionCell(text="n/a", title=f"no AUC (rank {r['rank']})", alpha="0", best=False))
                continue
            text = _with_ci(auc, r["auc_low"], r["auc_high"], _auc)[1]
            title = (f"rank {r['rank']}: {number(r['n_fp'])} FPs, {number(r['n_control'])} controls; "
                     + (PROXY_NOTE if proxy else TRAINING_NOTE))
            if too_few(r["n_fp"], r["n_control"], r["auc_low"], r["auc_high"]):
                # no shade and no outline: a statistic from a handful of tokens, or without a CI, says nothing
                cells.append(AttributionCell(text=f"too few to say ({text})", alpha="0", best=False, few=True,
                                             proxy=proxy, title=title))
                continue
            meaningful = effect_verdict(auc, r["auc_low"], r["auc_high"], r["n_fp"], r["n_control"]) == MORE
            cells.append(AttributionCell(
                text=text, alpha=f"{min(max(2 * (auc - 0.5), 0), 1):.3f}" if meaningful else "0",
                best=r["rank"] == 1 and meaningful, proxy=proxy, title=title))
        matrix_rows.append(AttributionRow(label=token_cell(model), href=pages.get(model), cells=cells))
    matrix = AttributionMatrix(indexes=[text_cell(_index_label(b, n, ambiguous)) for b, n in keys], rows=matrix_rows,
                               empty=NO_EVIDENCE)
    return {"attribution": matrix}
