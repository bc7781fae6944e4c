"""The model page's token-FP tables: the "top FPs with evidence" table (each FP's repetition against its
matched control, its top source against the controls' documents, a link to its snippets) and the FP tables
by probability (with the flags, the mid-rank percentile among controls and what each verdict guarantees)."""

from __future__ import annotations

from typing import Any

from ..db.store import Store
from .cells import listing, num, table
from .text import flat, number, token_cell

TOP_N = 20
# Rows of the "top FPs with evidence" table: flagged first, then the most repeated (SQL has the rest).
TOP_EVIDENCE = 50

# What a stored verdict guarantees (fp_guarantees.guarantee), in words a reader does not take for a failure.
_GUARANTEE = {"float64": "verified in float64",
              "calibrated": "decided in {} (margin beyond the calibrated bound)",
              "tolerance": "decided in {} (margin beyond --tolerance)"}


def verdict_text(guarantee: str | None, decided_in: str | None) -> str | None:
    if guarantee is None:
        return None
    return _GUARANTEE.get(guarantee, guarantee + " ({})").format(decided_in or "the scan dtype")


def _fp_query(order: str, limit: str = "") -> str:
    """The FP table's rows: FPs of the primary scan (the model is both parameters) with their flags, what their
    verdict guarantees and their strongest repetition evidence, the index where q is lowest. Evidence is looked up
    only for the FPs selected (the window over token_evidence is the costly part)."""
    return f"""
        WITH f AS (SELECT * FROM primary_fps WHERE model = ? ORDER BY {order} {limit}),
        ev AS (
            SELECT token_id, percentile, percentile_low, percentile_high, q_value FROM token_evidence
            WHERE model = ? AND role = 'fp' AND token_id IN (SELECT token_id FROM f)
            QUALIFY row_number() OVER (PARTITION BY token_id ORDER BY q_value NULLS LAST, index_name, backend) = 1
        )
        SELECT f.token_id, f.text, f.raw_token, f.category, f.prob, f.margin, g.guarantee, g.decided_in, fl.score,
               fl.rules, ev.percentile,
               CASE WHEN ev.percentile_low IS NULL OR ev.percentile_high IS NULL THEN format('{{:.0f}}', ev.percentile)
                    ELSE format('{{:.0f}} [{{:.0f}}, {{:.0f}}]', ev.percentile, ev.percentile_low, ev.percentile_high)
               END AS percentile_text, ev.q_value
        FROM f LEFT JOIN report_flags fl ON fl.model = f.model AND fl.token_id = f.token_id
        LEFT JOIN fp_guarantees g ON g.scan_id = f.scan_id AND g.token_id = f.token_id
        LEFT JOIN ev ON ev.token_id = f.token_id
        ORDER BY {order}"""


def extreme_fps(store: Store, model: str, *, top: bool) -> list[tuple]:
    """The TOP_N most (top=True) or least probable FPs, columns as all_fps."""
    order = f"prob {'DESC' if top else 'ASC'}, token_id"
    return store.query(_fp_query(order, f"LIMIT {TOP_N}"), [model, model])


def all_fps(store: Store, model: str) -> list[tuple]:
    """Every FP of the primary scan, most probable first, as tuples (the big table; no dict per row): id, text,
    vocabulary entry, category, p, margin, guarantee, decided in, score, rules, percentile (number, text), q."""
    return store.query(_fp_query("prob DESC, token_id"), [model, model])


def fp_row(row: tuple) -> list:
    token_id, text, raw, category, prob, margin, guarantee, decided_in, score, rules, pct, pct_text, q = row
    return [num(token_id), token_cell(text), token_cell(raw), category, num(prob), num(margin),
            verdict_text(guarantee, decided_in), num(score), listing(rules),
            None if pct is None else [num(pct), pct_text], num(q)]


FP_COLUMNS = [("id", "id"), ("text", "tok"), ("vocabulary entry", "tok"), ("category", "text"),
              ("p(t | t)", "num:6"), ("margin", "num"), ("verdict", "text"), ("suspicion", "num:3"),
              ("flags", "text"), ("percentile among controls (mid-rank) [95% CI]", "num"), ("q", "num:3")]


def fp_tables(store: Store, model: str, fps: list[tuple], page_size: int) -> dict[str, Any]:
    """The FP tables by probability. Top and bottom TOP_N only when there are more FPs than that: with fewer,
    they would repeat the table of all FPs row for row."""
    many = len(fps) > TOP_N
    return {
        "top_table": table("top", FP_COLUMNS, [fp_row(r) for r in extreme_fps(store, model, top=True)],
                           page_size=page_size) if many else None,
        "bottom_table": table("bottom", FP_COLUMNS, [fp_row(r) for r in extreme_fps(store, model, top=False)],
                              page_size=page_size) if many else None,
        "fps_table": table("fps", FP_COLUMNS, [fp_row(r) for r in fps], page_size=page_size)}


# -- top FPs with evidence -------------------------------------------------------------------------------
def evidence_rows(store: Store, model: str, limit: int = TOP_EVIDENCE) -> list[dict[str, Any]]:
    """Per FP with repetition evidence (its index where q is lowest): p(t | t), count(t), count(t x n) at the run's
    n, the rate, its matched controls and their rates, the mid-rank percentile, the top source among its sampled
    documents with the FP-vs-control odds ratio of that source, and the suspicion score."""
    return store.query_dicts(f"""
        WITH ev AS (
            SELECT e.*, r.n AS run_n, r.measure FROM token_evidence e JOIN evidence_runs r USING (model, backend, index_name)
            WHERE e.model = ? AND e.role = 'fp'
            QUALIFY row_number() OVER (PARTITION BY e.token_id ORDER BY e.q_value NULLS LAST, e.rate DESC,
                                       e.index_name, e.backend) = 1
        ), controls AS (
            SELECT m.fp_token_id AS token_id, m.backend, m.index_name,
                   list(coalesce(v.text, '#' || m.control_token_id) ORDER BY m.draw) AS control_texts,
                   list(m.control_token_id ORDER BY m.draw) AS control_ids,
                   median(c.rate) AS control_rate, count(c.rate) AS control_rates
            FROM control_matches m
            LEFT JOIN vocabulary v ON v.model = m.model AND v.token_id = m.control_token_id
            LEFT JOIN token_evidence c ON c.model = m.model AND c.backend = m.backend AND c.index_name = m.index_name
                                      AND c.token_id = m.control_token_id
            WHERE m.model = ? GROUP BY ALL
        ), top_source AS (
            SELECT s.token_id, s.backend, s.index_name, s.source, s.docs, s.sampled, s.share, s.enrichment,
                   s.enrichment_low, s.enrichment_high
            FROM source_enrichment s
            WHERE s.model = ? AND s.scope = 'token' AND s.role = 'fp' AND s.source <> '(unknown)'
            QUALIFY row_number() OVER (PARTITION BY s.token_id, s.backend, s.index_name
                                       ORDER BY s.share DESC, s.enrichment_low DESC NULLS LAST, s.source) = 1
        )
        SELECT f.token_id, f.text, f.prob, ev.index_name, ev.backend, ev.run_n, ev.measure, ev.unigram_count,
               ev.repeat_count, ev.rate, ev.percentile, ev.percentile_low, ev.percentile_high, ev.q_value,
               c.control_texts, c.control_ids, c.control_rate, c.control_rates,
               ts.source, ts.docs, ts.sampled, ts.share, ts.enrichment, ts.enrichment_low, ts.enrichment_high,
               sc.odds_ratio, sc.or_low, sc.or_high, sc.control_docs, sc.control_sampled, sc.q_value AS source_q,
               fl.score
        FROM ev JOIN primary_fps f ON f.model = ev.model AND f.token_id = ev.token_id
        LEFT JOIN controls c ON c.token_id = ev.token_id AND c.backend = ev.backend AND c.index_name = ev.index_name
        LEFT JOIN top_source ts ON ts.token_id = ev.token_id AND ts.backend = ev.backend AND ts.index_name = ev.index_name
        LEFT JOIN source_contrast sc ON sc.model = ev.model AND sc.backend = ev.backend
                                    AND sc.index_name = ev.index_name AND sc.source = ts.source
        LEFT JOIN report_flags fl ON fl.model = ev.model AND fl.token_id = ev.token_id
        ORDER BY fl.score DESC NULLS LAST, ev.repeat_count DESC, ev.rate DESC, f.prob DESC, f.token_id
        LIMIT {int(limit)}
    """, [model, model, model])


def _ratio_cell(value: float | None, low: float | None, high: float | None) -> list | None:
    if value is None:
        return None
    shown = number(value, 2)
    if low is not None and high is not None:
        shown += f" [{number(low, 2)}, {number(high, 2)}]"
    return [num(value), shown]


def _source_cell(r: dict[str, Any]) -> Any:
    if r["source"] is None:
        return None
    text = f"{flat(r['source'])} ({r['docs']:,} of {r['sampled']:,} documents"
    if r["enrichment"] is not None:
        text += f"; {r['enrichment']:.1f}x its corpus share"
    return text + ")"


def _contrast_cells(r: dict[str, Any]) -> list:
    """The source's FP-vs-control odds ratio with its exact CI (source_contrast), and the controls' documents
    from it; or why there is no ratio."""
    if r["source"] is None:
        return [None, None]
    if r["odds_ratio"] is None or r["control_sampled"] in (None, 0):
        return [[None, "no control document sampled"], None]
    return [_ratio_cell(r["odds_ratio"], r["or_low"], r["or_high"]),
            f"{r['control_docs']:,} of {r['control_sampled']:,}"]


def top_evidence_table(store: Store, model: str, page_size: int, snippet_ids: set[int]) -> dict[str, Any]:
    """One table per model: the FPs with the most evidence first, each with its matched control."""
    rows = evidence_rows(store, model)
    ns = sorted({r["run_n"] for r in rows})
    n_label = str(ns[0]) if len(ns) == 1 else "n"
    out = []
    for r in rows:
        controls = r["control_texts"] or []
        control = None
        if controls:
            control = token_cell(controls[0])
            if len(controls) > 1:
                control = flat(controls[0], show_spaces=True) + f" (+{len(controls) - 1} more)"
        pct = None if r["percentile"] is None else [num(r["percentile"]), (
            f"{r['percentile']:.0f}" if r["percentile_low"] is None or r["percentile_high"] is None
            else f"{r['percentile']:.0f} [{r['percentile_low']:.0f}, {r['percentile_high']:.0f}]")]
        link = (["#table-snippets", "snippets", f"id={r['token_id']}"] if r["token_id"] in snippet_ids else None)
        out.append([num(r["token_id"]), token_cell(r["text"]), num(r["prob"]), num(r["unigram_count"]),
                    num(r["repeat_count"]), num(r["rate"]), control, num(r["control_rate"]), pct,
                    num(r["q_value"]), _source_cell(r), *_contrast_cells(r), num(r["score"]), link])
    return table("topevidence", [
        ("id", "id"), ("text", "tok"), ("p(t | t)", "num:6"), ("count(t)", "num"), (f"count(t x {n_label})", "num"),
        ("rate", "num:4"), ("matched control", "tok"), ("control's rate", "num:4"),
        ("percentile (mid-rank) [95% CI]", "num"), ("q", "num:3"), ("top source", "text"),
        ("its odds ratio, FPs vs controls [95% CI]", "num"), ("controls' documents from it", "text"),
        ("suspicion", "num:3"), ("documents", "link")],
        out, page_size=page_size, empty="no FP has repetition evidence yet: run `fpprov provenance --controls`",
        caption=("rate = " + "; ".join(sorted({r["measure"] for r in rows}))) if rows else None)
