"""reports/validation.html: what the validation study (`fpprov validate`, tables of migration 015) measured of
the instrument: dose-response, each flag rule's sensitivity and false flags, attribution, natural and shared FPs.

The page shows the latest complete study only: an interrupted one has rows in some tables and not in others,
and a page mixing them would report rates no run measured.
"""

from __future__ import annotations

import json
from typing import Any

from ..db.store import Store
from . import charts
from .cells import link, listing, num, table
from .text import flat, percent_text, text_cell, token_cell
from .validation_chart import dose_response_chart
from .validation_rates import (FALSE_GROUPS, RULES, clean, wilson, ci_cell, diff_cell, latest_study, rule_rates,
                               share_cell, share_text)

GROUP_LABELS = {"planted_fp": "planted FPs, flagged", "planted_fp_right_source": "planted FPs, naming the planted source",
                "unplanted_fp": "unplanted FPs of planted organisms", "twin_fp": "twins that are FPs",
                "control": "matched controls", "null_fp": "FPs of the null organism"}
MEASURES = {
    "dose_50": "runs at which half the planted words become FPs",
    "planted_fp_rate": "planted words (dose > 0) that became FPs",
    "twin_fp_rate": "twins that became FPs",
    "attribution_top1": "organisms whose own corpus ranks first",
    "attribution_top1_resolved": "own corpus first and not tied with the runner-up",
    "null_flag_rate": "FPs of the null organism flagged by any rule",
    "natural_own_vs_control": "natural FPs vs their controls: share with any n-fold run, own corpus",
    "natural_own_vs_other_mixture": "natural FPs: share with any n-fold run, own corpus minus other mixtures'",
}
DIFFERENCES = {"natural_own_vs_control", "natural_own_vs_other_mixture"}


def validation_context(store: Store, pages: dict[str, str], page_size: int) -> dict[str, Any] | None:
    """The context of validation.html, or None when the database holds no complete study."""
    study = latest_study(store)
    if study is None:
        return None
    sid = study["study_id"]
    organisms = store.query_dicts("SELECT * FROM validation_organisms WHERE study_id = ? ORDER BY is_null, organism",
                                  [sid])
    summary = {r["measure"]: r for r in store.query_dicts("SELECT * FROM validation_summary WHERE study_id = ?", [sid])}
    ctx: dict[str, Any] = {"study": _study_header(study, organisms), "summary_table": _summary_table(summary, page_size)}
    ctx.update(_dose_section(store, sid, summary, page_size))
    ctx.update(_flag_section(store, sid, page_size))
    ctx.update(_attribution_section(store, sid, organisms, summary, page_size))
    ctx.update(_natural_section(store, sid, summary, page_size))
    ctx.update(_shared_section(store, sid, page_size))
    ctx["organisms_table"] = table("vorganisms", [
        ("organism", "text"), ("model", "link"), ("mixture", "text"), ("sources", "text"), ("planted into", "text"),
        ("planted words", "num"), ("training tokens", "num"), ("steps", "num"), ("tokens seen", "num"),
        ("final loss", "num:3"), ("train seconds", "num:1"), ("token FPs", "num"), ("own index", "text")], [
        [text_cell(o["organism"]), link(pages[o["model"]], o["model"]) if o["model"] in pages else None,
         text_cell(o["mixture_name"]), listing(o["mixture"]),
         text_cell("nothing (the null)" if o["is_null"] else o["planted_source"]), num(o["n_planted"]),
         num(o["corpus_tokens"]), num(o["steps"]), num(o["tokens_seen"]), num(o["final_loss"]),
         num(o["train_seconds"]), num(o["n_fps"]), text_cell(o["index_name"])] for o in organisms],
        page_size=page_size, empty="no organisms recorded")
    ctx["settings"] = _settings(study["settings"])
    return ctx


def runs(x: float) -> str:
    return f"{x:.3g} run{'' if x == 1 else 's'}"


def _study_header(study: dict[str, Any], organisms: list[dict[str, Any]]) -> dict[str, Any]:
    when = study["finished_at"] or study["started_at"]
    return {"id": study["study_id"], "design": study["design"],
            "date": when.strftime("%Y-%m-%d %H:%M") if when else "unknown",   # as stored: the writer's local time
            "fpprov": study["fpprov_version"], "torch": study["torch_version"] or "?",
            "transformers": study["transformers_version"] or "?", "organisms": len(organisms),
            "indexes": study["n_indexes"], "minutes": None if study["seconds"] is None else study["seconds"] / 60,
            "expected_minutes": None if study["expected_seconds"] is None else study["expected_seconds"] / 60,
            "sources": ", ".join(sorted({s for o in organisms for s in o["mixture"]})),
            "max_steps": max((o["steps"] or 0 for o in organisms), default=0),
            "max_tokens_seen": max((o["tokens_seen"] or 0 for o in organisms), default=0)}


def _settings(text: str) -> list[tuple[str, str]]:
    try:
        settings = json.loads(text)
    except (TypeError, ValueError):
        return [("settings", flat(text))]
    if not isinstance(settings, dict):
        return [("settings", flat(text))]
    return [(flat(k), flat(v if isinstance(v, str) else json.dumps(v, sort_keys=True)))
            for k, v in sorted(settings.items())]


def _summary_table(summary: dict[str, dict], page_size: int) -> dict[str, Any]:
    rows = []
    for measure, r in sorted(summary.items(), key=lambda kv: (list(MEASURES).index(kv[0]) if kv[0] in MEASURES
                                                               else len(MEASURES), kv[0])):
        if measure == "dose_50":
            est = None if r["estimate"] is None else [r["estimate"], runs(r["estimate"])]
            ci = None if r["low"] is None or r["high"] is None else [r["low"], f"{r['low']:.3g} to {r['high']:.3g} runs"]
        elif measure in DIFFERENCES:
            est, ci = diff_cell(r["estimate"]), ci_cell(r["low"], r["high"], points=True)
        else:
            est, ci = share_cell(r["estimate"]), ci_cell(r["low"], r["high"])
        rows.append([text_cell(measure), text_cell(MEASURES.get(measure)), est, ci, num(r["k"]), num(r["n"]),
                     diff_cell(r["reference"]) if measure in DIFFERENCES else
                     num(r["reference"]) if measure == "dose_50" else share_cell(r["reference"]),
                     text_cell(r["reference_label"]), text_cell(r["note"])])
    return table("vsummary", [("measure", "text"), ("what", "text"), ("estimate", "num"), ("95% CI", "num"),
                              ("k", "num"), ("n", "num"), ("reference", "num"), ("set against", "text"),
                              ("note", "text")], rows, page_size=page_size, empty="no headline figures recorded")


def _dose_section(store: Store, sid: str, summary: dict[str, dict], page_size: int) -> dict[str, Any]:
    rows = store.query_dicts("SELECT * FROM validation_dose_response WHERE study_id = ? AND organism = 'all' "
                             "ORDER BY dose", [sid])
    d50 = summary.get("dose_50") or {}
    dose50 = clean(d50.get("estimate"))
    chart = dose_response_chart(rows, dose50)
    dose_table = table("vdose", [
        ("dose (runs)", "num"), ("copies per training token", "num:6"), ("planted words", "num"), ("FPs", "num"),
        ("FP share", "num"), ("95% CI", "num"), ("twins", "num"), ("twin FPs", "num"), ("twin share", "num"),
        ("95% CI (twins)", "num"), ("difference", "num"), ("95% CI (difference)", "num")], [
        [num(r["dose"]), num(r["copies_per_token"]), num(r["n_words"]), num(r["words_fp"]), share_cell(r["fp_share"]),
         ci_cell(r["fp_low"], r["fp_high"]), num(r["n_twins"]), num(r["twins_fp"]), share_cell(r["twin_share"]),
         ci_cell(r["twin_low"], r["twin_high"]), diff_cell(r["diff"]), ci_cell(r["diff_low"], r["diff_high"], points=True)]
        for r in rows], page_size=page_size, empty="no dose-response rows")
    crossing = ("not measured" if not d50 else
                f"{runs(dose50)} ({d50.get('note') or 'interpolated'})" if dose50 is not None else
                (d50.get("note") or "not reached"))
    return {"dose_chart": chart, "dose_table": dose_table, "dose_50": crossing, "dose_50_value": dose50,
            "dose_words": sum(r["n_words"] for r in rows)}


def _bands(rows: list[dict]) -> list[tuple[str, int, int, dict]]:
    """Cumulative rows (dose >= d) into bands [d_i, d_i+1): the counts of consecutive rows differenced."""
    rows = sorted(rows, key=lambda r: r["dose_min"])
    out = []
    for i, r in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        k = r["flagged"] - (nxt["flagged"] if nxt else 0)
        n = r["n"] - (nxt["n"] if nxt else 0)
        label = (f">= {r['dose_min']}" if nxt is None else str(r["dose_min"]) if nxt["dose_min"] == r["dose_min"] + 1
                 else f"{r['dose_min']} to {nxt['dose_min'] - 1}")
        out.append((label, k, n, r))
    return out


def _flag_section(store: Store, sid: str, page_size: int) -> dict[str, Any]:
    rows = store.query_dicts("SELECT * FROM validation_flag_rates WHERE study_id = ? ORDER BY rule, grp, dose_min",
                             [sid])
    sens = []
    for rule in (*RULES, "any"):
        for grp in ("planted_fp", "planted_fp_right_source"):
            for label, k, n, cum in _bands([r for r in rows if r["rule"] == rule and r["grp"] == grp]):
                low, high = wilson(k, n)
                sens.append([text_cell(rule), text_cell(GROUP_LABELS[grp]), text_cell(label), num(k), num(n),
                             share_cell(k / n if n else None), ci_cell(low, high), num(cum["dose_min"]),
                             num(cum["flagged"]), num(cum["n"]), share_cell(cum["rate"]),
                             ci_cell(cum["rate_low"], cum["rate_high"])])
    sensitivity = table("vsensitivity", [
        ("rule", "text"), ("tokens", "text"), ("dose band (runs)", "text"), ("flagged", "num"), ("n", "num"),
        ("sensitivity", "num"), ("95% CI", "num"), ("at dose >=", "num"), ("flagged (>=)", "num"), ("n (>=)", "num"),
        ("sensitivity (>=)", "num"), ("95% CI (>=)", "num")], sens, page_size=page_size,
        empty="no planted word became an FP traced in its own index")
    false_rows = []
    for r in rows:
        if r["grp"] not in FALSE_GROUPS:
            continue
        verdict = None
        if r["nominal"] is not None and r["rate"] is not None:
            verdict = ("at or below the nominal rate" if r["rate"] <= r["nominal"] else
                       "above it, CI includes it" if (r["rate_low"] or 0) <= r["nominal"] else "above it, CI excludes it")
        false_rows.append([text_cell(r["rule"]), text_cell(GROUP_LABELS.get(r["grp"], r["grp"])), num(r["flagged"]),
                           num(r["n"]), share_cell(r["rate"]), ci_cell(r["rate_low"], r["rate_high"]),
                           share_cell(r["nominal"]), text_cell(verdict), text_cell(r["compares_with"])])
    false_flags = table("vfalse", [
        ("rule", "text"), ("tokens", "text"), ("flagged", "num"), ("n", "num"), ("false-flag rate", "num"),
        ("95% CI", "num"), ("nominal", "num"), ("against the nominal", "text"), ("what it is", "text")],
        false_rows, page_size=page_size, empty="no unplanted token was traced")
    null_rows = [r for r in rows if r["grp"] == "null_fp" and r["nominal"] is not None]
    rates = rule_rates(store)
    return {"sensitivity_table": sensitivity, "false_table": false_flags,
            "rule_sentences": [{"rule": r, "text": rates.rates[r].sentence()} for r in RULES if r in rates.rates],
            "null_lines": [f"{r['rule']}: {r['flagged']} of {r['n']} FPs of the null organism flagged, "
                           f"{share_text(r['rate'], clean(r['rate_low']), clean(r['rate_high']))}, against a nominal "
                           f"FDR of {percent_text(r['nominal'])}" for r in null_rows]}


def _attribution_section(store: Store, sid: str, organisms: list[dict], summary: dict[str, dict],
                         page_size: int) -> dict[str, Any]:
    calls = {r["organism"]: r for r in store.query_dicts("SELECT * FROM validation_confusion WHERE study_id = ?", [sid])}
    ranked = store.query_dicts("SELECT * FROM validation_attribution WHERE study_id = ? ORDER BY organism, rank", [sid])
    names = [o["organism"] for o in organisms]
    columns = [o["organism"] for o in organisms if o["index_name"]] or sorted({r["index_organism"] for r in ranked})
    matrix = []
    for name in names:
        call = calls.get(name)
        cells = []
        for col in columns:
            top = call is not None and call["top_index_organism"] == col
            cells.append({"top": top, "own": col == name, "tied": bool(top and call["tied_with_next"]),
                          "text": ("1st" + (" (tied)" if call["tied_with_next"] else "")) if top else "",
                          "title": (f"AUC {call['auc']:.3f} [{call['auc_low']:.3f}, {call['auc_high']:.3f}]"
                                    if top and call["auc"] is not None and call["auc_low"] is not None else "")})
        matrix.append({"organism": name, "mixture": next(o["mixture_name"] for o in organisms if o["organism"] == name),
                       "cells": cells, "called": call is not None})
    ranking = table("vranking", [
        ("organism", "text"), ("rank", "num"), ("index of", "text"), ("relation", "text"), ("AUC", "num:3"),
        ("95% CI", "text"), ("any-run difference", "num"), ("95% CI (difference)", "num"), ("FPs", "num"),
        ("controls", "num"), ("tied with next", "num")], [
        [text_cell(r["organism"]), num(r["rank"]), text_cell(r["index_organism"]), text_cell(r["relation"]),
         num(r["auc"]), text_cell(None if r["auc_low"] is None or r["auc_high"] is None else
                                  f"{r['auc_low']:.3f} to {r['auc_high']:.3f}"),
         diff_cell(r["any_diff"]), ci_cell(r["any_diff_low"], r["any_diff_high"], points=True), num(r["n_fp"]),
         num(r["n_control"]), num(r["tied_with_next"])] for r in ranked],
        page_size=page_size, empty="no index was ranked")
    top1 = summary.get("attribution_top1")
    resolved = summary.get("attribution_top1_resolved")

    def accuracy(r: dict | None) -> dict | None:
        if not r:
            return None
        return {"k": r["k"], "n": r["n"], "text": share_text(clean(r["estimate"]), clean(r["low"]), clean(r["high"])),
                "estimate": r["estimate"], "low": r["low"], "high": r["high"], "chance": r["reference"],
                "chance_text": percent_text(clean(r["reference"])), "label": r["reference_label"] or "chance"}

    return {"confusion": {"columns": columns, "rows": matrix}, "ranking_table": ranking,
            "top1": accuracy(top1), "top1_resolved": accuracy(resolved)}


def _natural_section(store: Store, sid: str, summary: dict[str, dict], page_size: int) -> dict[str, Any]:
    rows = store.query_dicts("""
        SELECT * FROM validation_natural WHERE study_id = ?
        ORDER BY organism, CASE relation WHEN 'own' THEN 0 WHEN 'same_mixture' THEN 1
                                         WHEN 'shares_sources' THEN 2 ELSE 3 END, index_name""", [sid])
    natural = table("vnatural", [
        ("organism", "text"), ("corpus", "text"), ("relation", "text"), ("n", "num"), ("natural FPs", "num"),
        ("with a run", "num"), ("FP share", "num"), ("95% CI", "num"), ("controls", "num"), ("with a run (controls)", "num"),
        ("control share", "num"), ("95% CI (controls)", "num"), ("difference", "num"), ("95% CI (difference)", "num"),
        ("median rate FPs", "num:6"), ("median rate controls", "num:6")], [
        [text_cell(r["organism"]), text_cell(r["index_name"]), text_cell(r["relation"]), num(r["n"]), num(r["n_fp"]),
         num(r["fp_any"]), share_cell(r["fp_share"]), ci_cell(r["fp_low"], r["fp_high"]), num(r["n_control"]),
         num(r["control_any"]), share_cell(r["control_share"]), ci_cell(r["control_low"], r["control_high"]),
         diff_cell(r["diff"]), ci_cell(r["diff_low"], r["diff_high"], points=True), num(r["median_fp_rate"]),
         num(r["median_control_rate"])] for r in rows], page_size=page_size, empty="no natural FPs were compared")
    items, muted = [], []
    for r in rows:
        if r["relation"] != "own":
            continue
        items += [(f"{r['organism']}: natural FPs, own corpus (n = {r['n_fp']})", r["fp_share"], r["fp_low"], r["fp_high"]),
                  (f"{r['organism']}: their controls, own corpus (n = {r['n_control']})", r["control_share"],
                   r["control_low"], r["control_high"])]
        muted += [False, True]
    chart = (charts.share_intervals(items, label="natural FPs and their controls with any n-fold run, own corpus",
                                    x_label="share with count(t x n) > 0, 95% Wilson CI", muted=muted)
             if items else None)
    lines = []
    for measure in ("natural_own_vs_control", "natural_own_vs_other_mixture"):
        r = summary.get(measure)
        if r and r["estimate"] is not None:
            ci = "" if r["low"] is None else f" [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
            lines.append({"measure": measure, "estimate": r["estimate"], "low": r["low"], "high": r["high"],
                          "n": r["n"], "text": f"{MEASURES[measure]}: {100 * r['estimate']:+.1f} pp{ci} (n = {r['n']})"
                                                + (f"; {r['note']}" if r["note"] else "")})
    return {"natural_table": natural, "natural_chart": chart, "natural_lines": lines}


def _shared_section(store: Store, sid: str, page_size: int) -> dict[str, Any]:
    pairs = store.query_dicts("SELECT * FROM validation_shared WHERE study_id = ? ORDER BY organism_a, organism_b",
                              [sid])
    pair_table = table("vshared", [
        ("organism a", "text"), ("organism b", "text"), ("sources in common", "text"), ("FPs a", "num"),
        ("FPs b", "num"), ("shared", "num"), ("Jaccard", "num:3"), ("shared and planted into both", "num"),
        ("planted into both", "num"), ("shared, planted into neither", "num")], [
        [text_cell(r["organism_a"]), text_cell(r["organism_b"]), listing(r["shared_sources"]), num(r["fps_a"]),
         num(r["fps_b"]), num(r["shared"]), num(r["jaccard"]), num(r["shared_planted"]),
         num(r["shared_planted_expected"]), num(r["shared_natural"])] for r in pairs],
        page_size=page_size, empty="fewer than two organisms")
    explained = store.query("SELECT explanation, count(*) FROM validation_shared_fps WHERE study_id = ? "
                            "GROUP BY ALL ORDER BY 2 DESC, 1", [sid])
    texts = table("vsharedfps", [("FP text", "tok"), ("organisms", "num"), ("which", "text"), ("planted into", "text"),
                                 ("explanation", "text")], [
        [token_cell(t), num(n), listing(orgs), listing(planted), text_cell(why)]
        for t, n, orgs, planted, why in store.query(
            "SELECT norm_text, n_organisms, organisms, planted_in, explanation FROM validation_shared_fps "
            "WHERE study_id = ? ORDER BY n_organisms DESC, n_planted_in DESC, norm_text", [sid])],
        page_size=page_size, empty="no FP text is shared by two organisms")
    return {"shared_pairs_table": pair_table, "shared_texts_table": texts,
            "shared_explained": [{"explanation": e, "n": n} for e, n in explained]}
