"""The model page's sections beyond the token FPs: vector fixed points, provenance (counts, sources,
snippets) and under-trained tokens (with their SQL)."""

from __future__ import annotations

from typing import Any

from . import charts
from . import data
from ..db.store import Store
from .cells import listing, num, percent, table
from .evidence import proxy_flags
from .sentences import corpus_phrase
from .text import flat, number, ordinal, snippet_cell, text_cell, token_cell


def vector_section(store: Store, name: str, page_size: int) -> dict[str, Any]:
    runs = data.vector_run_summary(store, name)
    vectors = data.vector_fps(store, name)
    runs_table = table("vruns", [("method", "text"), ("embedding", "text"), ("dtype", "text"), ("runs", "num"),
                                 ("converged", "num"), ("stopped by", "text"), ("median steps", "num:1")],
                       [[r["method"], r["embedding"], r["dtype"], num(r["runs"]), num(r["converged"]),
                         listing(r["stop_reasons"]), num(r["median_steps"])] for r in runs], page_size=page_size)
    vec_table = table("vectors", [
        ("vector", "id"), ("embedding", "text"), ("dtype", "text"), ("methods", "text"), ("seeds", "num"),
        ("residual", "num"), ("stable", "text"), ("max rollout distance", "num"), ("entropy", "num"),
        ("top token", "tok"), ("top weight", "num"), ("top token is FP", "text")], [
        [num(v["vector_id"]), v["embedding"], v["dtype"], listing(v["methods"]), num(len(v["seeds"] or [])),
         num(v["residual"]), "yes" if v["stable"] else "no", num(v["rollout_dist_max"]), num(v["entropy"]),
         token_cell(v["top_token_text"]) if v["top_token_text"] is not None else f"#{v['top_token_id']}",
         num(v["top_weight"]), "yes" if v["top_token_is_fp"] else "no"]
        for v in vectors], page_size=page_size)
    rollout = charts.log_lines([(f"vector {v['vector_id']}", v["rollout_dist_by_l"] or []) for v in vectors],
                               label="rollout distance", x_label="sequence length l", y_label="distance")
    mixtures = [{"id": v["vector_id"],
                 "summary": f"{'stable' if v['stable'] else 'unstable'}, top weight {number(v['top_weight'])}",
                 "chart": charts.bars([(t["text"] if t["text"] is not None else f"#{t['token_id']}", t["weight"])
                                       for t in (v["mixture"] or [])],
                                      label=f"mixture of vector {v['vector_id']}", token_labels=True,
                                      value_format=percent)}
                for v in vectors]
    return {"vector_runs_table": runs_table, "vectors_table": vec_table, "rollout_chart": rollout,
            "vectors": mixtures, "spaces_table": space_comparison(runs, vectors, page_size)}


SEED_SPACE = "raw"   # the seed feeds x as inputs_embeds and maps with the raw weight matrix


def space_comparison(runs: list[dict[str, Any]], vectors: list[dict[str, Any]], page_size: int) -> dict | None:
    """The embedding spaces side by side (one column each, the seed's first): runs converged per method, FPs
    found, how many are stable, and each FP's mixture (its top tokens). None below two spaces."""
    spaces = sorted({r["embedding"] for r in runs} | {v["embedding"] for v in vectors},
                    key=lambda e: (e != SEED_SPACE, e))
    if len(spaces) < 2:
        return None
    methods = sorted({r["method"] for r in runs})
    rows = []
    for method in methods:
        cells = []
        for space in spaces:
            mine = [r for r in runs if r["method"] == method and r["embedding"] == space]
            done = sum(r["converged"] for r in mine)
            cells.append(f"{done}/{sum(r['runs'] for r in mine)} converged" if mine else "not run")
        rows.append([f"{method} seeds", *cells])
    found = {space: [v for v in vectors if v["embedding"] == space] for space in spaces}
    rows.append(["vector FPs (stable)", *(f"{len(found[s])} ({sum(bool(v['stable']) for v in found[s])})"
                                          for s in spaces)])
    rows.append(["their mixtures", *(text_cell("; ".join(_mixture_text(v) for v in found[s]) or "none")
                                     for s in spaces)])
    labels = [f"{s} (the seed's convention)" if s == SEED_SPACE else s for s in spaces]
    return table("spaces", [("", "text"), *((label, "text") for label in labels)], rows, page_size=page_size,
                 caption="Vector FPs in each embedding space: the seed's counts are raw-space counts "
                         "(docs/vectors.md explains the difference for Gemma's sqrt(hidden) scale).")


def _mixture_text(v: dict[str, Any]) -> str:
    tokens = ", ".join(f"{t['text'] if t['text'] is not None else '#' + str(t['token_id'])!r} {percent(t['weight'])}"
                       for t in (v["mixture"] or [])[:3])
    return f"vector {v['vector_id']} ({'stable' if v['stable'] else 'unstable'}): {tokens}"


def _role(role: str | None) -> str:
    return "FP" if role in (None, "fp") else "control"


def provenance_section(store: Store, name: str, page_size: int) -> dict[str, Any]:
    ns, rows = data.provenance_rows(store, name)

    def count_cell(entry: dict | None) -> list | None:
        if entry is None:
            return None
        if entry["status"] == "ok":
            return num(entry["count"])
        return [None, entry["status"].replace("_", " ")]

    prov = table("provenance", [("id", "id"), ("text", "tok"), ("role", "text"), ("corpus", "text"),
                                ("spelling", "text")]
                 + [(f"n={n}", "num") for n in sorted(ns, reverse=True)], [
        [num(r["token_id"]), token_cell(r["token_text"]), _role(r["role"]),
         text_cell(corpus_phrase(r["index_name"], r["index_is_proxy"])), r["variant"]]
        + [count_cell(r["by_n"].get(n)) for n in sorted(ns, reverse=True)] for r in rows],
        page_size=page_size, empty="not traced yet: run `fpprov provenance`")
    shares = data.source_share_rows(store, name)
    sources = table("sources", [("id", "id"), ("text", "tok"), ("role", "text"), ("index", "text"), ("n", "num"),
                                ("spelling", "text"), ("sampled", "num"), ("top source share", "num"),
                                ("sources", "text")], [
        [num(r["token_id"]), token_cell(r["token_text"]), _role(r["role"]), text_cell(r["index_name"]), num(r["n"]),
         r["variant"],
         num(r["sampled"]), [r["shares"][0]["share"], f"{100 * r['shares'][0]['share']:.0f}%"],
         text_cell(", ".join(f"{s['source']} {100 * s['share']:.0f}% ({s['docs']})" for s in r["shares"]))]
        for r in shares], page_size=page_size, empty="no documents sampled yet")
    snippet_rows = data.snippet_rows(store, name)
    snippets = table("snippets", [("id", "id"), ("text", "tok"), ("role", "text"), ("n", "num"), ("spelling", "text"),
                                  ("source", "text"), ("snippet", "snip")], [
        [num(r["token_id"]), token_cell(r["token_text"]), _role(r["role"]), num(r["n"]), r["variant"],
         text_cell(r["source"]),
         snippet_cell(r["snippet"], r["query"], r["needle_offset"])] for r in snippet_rows],
        page_size=page_size, empty="no documents sampled yet")
    corpora = [{"name": text_cell(index_name), "proxy": proxy}
               for (m, _, index_name), proxy in sorted(proxy_flags(store, name).items(), key=lambda kv: kv[0][2])]
    proxies = sorted({flat(c["name"]) for c in corpora if c["proxy"]})
    note = (f"Counts from {', '.join(proxies)}: a proxy, not this model's training data. The counts describe that "
            "corpus; they say nothing about what the model saw.") if proxies else None
    sampled = data.sampled_token_count(store, name)
    sql_literal = name.replace("'", "''")
    detail_note = (f"Sources and snippets of the {data.DETAIL_TOKENS:,} most suspicious, then most frequent, of the "
                   f"{sampled:,} tokens with sampled documents; the rest: fpprov sql \"FROM source_shares WHERE "
                   f"model = '{sql_literal}'\"") if sampled > data.DETAIL_TOKENS else None
    return {"provenance_table": prov, "sources_table": sources, "snippets_table": snippets, "proxy_note": note,
            "corpora": corpora, "snippet_ids": {r["token_id"] for r in snippet_rows},
            "detail_note": detail_note}


def undertrained_summary(store: Store, model: str) -> dict[str, Any] | None:
    """The model's under-trained run joined with its FP counts (fp_undertrained), or None when not computed."""
    rows = store.query_dicts(
        "SELECT r.*, f.ids, f.fp_undertrained, f.fp_trained, f.nonfp_undertrained, f.nonfp_trained, "
        "f.fp_undertrained_share, f.nonfp_undertrained_share "
        "FROM undertrained_runs r LEFT JOIN fp_undertrained f USING (model) WHERE r.model = ?", [model])
    return rows[0] if rows else None


def undertrained_fps(store: Store, model: str, limit: int = 200) -> list[tuple]:
    """The model's primary-scan FPs that are under-trained candidates, most under-trained first."""
    return store.query(
        "SELECT f.token_id, f.text, f.raw_token, f.category, f.prob, u.indicator_value, u.percentile "
        "FROM primary_fps f JOIN undertrained_tokens u ON u.model = f.model AND u.token_id = f.token_id "
        "WHERE f.model = ? AND u.undertrained ORDER BY u.indicator_value, f.token_id LIMIT ?", [model, limit])


def undertrained_section(store: Store, name: str, page_size: int) -> dict[str, Any]:
    """FPs against magikarp's weight-based under-trained candidates (table undertrained_tokens)."""
    s = undertrained_summary(store, name)
    if s is None:
        return {"undertrained": None, "undertrained_table": None}
    counts = table("utcounts", [("", "text"), ("under-trained candidates", "num"), ("well-trained", "num"),
                                ("candidate share", "num")], [
        ["FP", num(s["fp_undertrained"]), num(s["fp_trained"]), num(s["fp_undertrained_share"])],
        ["not FP", num(s["nonfp_undertrained"]), num(s["nonfp_trained"]), num(s["nonfp_undertrained_share"])]]
        if s["ids"] is not None else [], page_size=page_size, empty="no scan to compare with")
    fps = table("utfps", [("id", "id"), ("text", "tok"), ("vocabulary entry", "tok"), ("category", "text"),
                          ("p(t | t)", "num:6"), ("indicator", "num"), ("percentile", "num:2")], [
        [num(i), token_cell(t), token_cell(raw), cat, num(p), num(v), num(pct)]
        for i, t, raw, cat, p, v, pct in undertrained_fps(store, name)],
        page_size=page_size, empty="no FP is an under-trained candidate")
    if s["reference_rule"] == "none" and s["tied_head"]:
        note = ("No reference set: the tokenizer names no unused slot, has no token for a byte that UTF-8 never "
                "uses and no id its round trip cannot produce. With tied embeddings that leaves magikarp's "
                "indicator undefined (magikarp refuses the case), so no id is a candidate.")
        return {"undertrained": {"note": note, "counts": counts}, "undertrained_table": fps}
    note = (f"Indicator {s['indicator']} (reference set: {s['reference_count']:,} ids by rule "
            f"{s['reference_rule']}); candidates are the ids at or below the {ordinal(s['percentile'])} percentile "
            f"of ordinary ids ({number(s['n_undertrained'])} of {number(s['n_tokens'])}). Weights only: "
            "magikarp's verification prompts were not run.")
    return {"undertrained": {"note": note, "counts": counts}, "undertrained_table": fps}
