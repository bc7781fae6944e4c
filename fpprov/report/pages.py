"""The contexts of the three page kinds: index.html (seed table, models, scans, suspicion rules), one page
per model, and shared.html (overlap matrix, corpus attribution, base vs instruct, FP texts shared across
models)."""

from __future__ import annotations

from typing import Any

from . import charts
from . import data
from ..db.store import Store
from .cells import link, listing, num, table
from .evidence import attribution_context, evidence_section
from .findings import findings_context, flag_rates_text, model_flag_findings
from .fps import all_fps, fp_tables, top_evidence_table
from .sections import provenance_section, undertrained_section, vector_section
from .text import flat, id_range, number, text_cell, token_cell
from .validation_rates import rule_rates


def index_context(store: Store, models: list[dict], pages: dict[str, str], page_size: int) -> dict[str, Any]:
    def model_link(name: str | None) -> list | None:
        return link(pages[name], name) if name in pages else (token_cell(name) if name else None)

    seed = [[text_cell(r["model"]), text_cell(r["family"]), model_link(r["base_model"]), num(r["base_token_fps"]),
             _with_bos(r["base_tokens_scanned"], r["base_bos"]), model_link(r["inst_model"]), num(r["inst_token_fps"]),
             _with_bos(r["inst_tokens_scanned"], r["inst_bos"]), num(r["base_vector_fps"]), num(r["inst_vector_fps"]),
             num(r["base_vector_fps_iterate"]), num(r["inst_vector_fps_iterate"]),
             num(r["base_vector_fps_gradient"]), num(r["inst_vector_fps_gradient"])]
            for r in data.seed_rows(store)]
    seed_table = table("seed", [("model", "text"), ("family", "text"), ("base", "link"), ("token FPs base", "num"),
                                ("ids scanned (BOS)", "num"), ("inst", "link"), ("token FPs inst", "num"),
                                ("ids scanned (BOS)", "num"), ("vector FPs base", "num"), ("vector FPs inst", "num"),
                                ("by iteration base", "num"), ("by iteration inst", "num"),
                                ("by gradient base", "num"), ("by gradient inst", "num")],
                       seed, page_size=page_size, empty="no scans yet")
    model_table = table("models", [
        ("model", "link"), ("family", "text"), ("variant", "text"), ("quantization", "text"), ("dtype", "text"),
        ("BOS", "text"), ("scanned ids", "text"), ("token FPs", "num"), ("float64-verified", "num"),
        ("vector FPs", "num"), ("flagged", "num"), ("traced", "num")], [
        [link(pages[m["model"]], m["model"]), text_cell(m["family"]), text_cell(m["variant"]),
         text_cell(m["quantization"] or "none"), text_cell(m["dtype"]),
         text_cell(None if m["bos"] is None else ("yes" if m["bos"] else "no")),
         text_cell(None if m["scan_id"] is None else
                   f"{id_range(m['id_start'], m['id_stop'])}{'' if m['complete'] else ' (interrupted)'}"),
         num(m["token_fps"]), num(m["verified"]), num(m["vector_fps"]), num(m["flagged"]), num(m["traced"])]
        for m in models], page_size=page_size, empty="no results yet: run `fpprov scan MODEL`")
    scans = _scans_table(store, pages, page_size)
    rules = table("rules", [("rule", "text"), ("threshold", "num:6"), ("min support", "num"), ("weight", "num"),
                            ("fires when", "text")],
                  [[r["rule"], num(r["threshold"]), num(r["min_support"]), num(r["weight"]),
                    text_cell(r["description"])] for r in data.thresholds(store)], page_size=page_size)
    suspicious = table("suspicious", [("model", "link"), ("id", "id"), ("text", "tok"), ("score", "num:3"),
                                      ("flags", "text"), ("FPs vs controls flagged (rule, corpus)", "text"),
                                      ("reasons", "text")], [
        [link(pages[model], model) if model in pages else token_cell(model), num(token_id), token_cell(text),
         num(score), listing(rules), text_cell(flag_rates_text(*rates)), listing(reasons, " | ")]
        for model, token_id, text, score, rules, reasons, *rates in data.top_flags(store)],
        page_size=page_size, empty="no token breaks a suspicion rule")
    compared = data.seed_comparison(store)
    conventions, _ = data.published_seed()
    seed_vs_ours = table("seedcmp", [
        ("model", "link"), ("seed token FPs", "num"), ("our token FPs", "num"), ("our ids", "text"),
        ("dtype", "text"), ("quantization", "text"), ("BOS", "text"), ("seed vector FPs (iterate, gradient)", "text"),
        ("our vector FPs (iterate, gradient)", "text"), ("our embedding space", "text"), ("what explains the difference", "text")], [
        [model_link(r["model"]), num(r["seed_token_fps"]), num(r["token_fps"]), text_cell(_ids_text(r)),
         text_cell(r["dtype"]), text_cell(r["quantization"] or "none"),
         text_cell(None if r["bos"] is None else ("yes" if r["bos"] else "no")),
         text_cell(f"{r['seed_vector_fps_iterate']}, {r['seed_vector_fps_gradient']}"),
         text_cell(_vector_counts(r)),
         listing(r["embeddings"]), text_cell(seed_difference(r, conventions))]
        for r in compared if r["in_seed"]], page_size=page_size, empty="no scanned model is in the seed's tables")
    not_in_seed = [r["model"] for r in compared if not r["in_seed"]]
    return {**findings_context(store, models, pages), "seed_table": seed_table, "seed_vs_ours_table": seed_vs_ours,
            "not_in_seed": ", ".join(not_in_seed) if not_in_seed else None, "models_table": model_table, "scans_table": scans, "thresholds_table": rules,
            "suspicious_table": suspicious}


def _vector_counts(r: dict[str, Any]) -> str | None:
    """'raw: 2, 1; effective: 3, 0': our vector FPs by iteration and by gradient descent, per embedding space
    (the seed's counts are raw-space counts); 'none found' when searched without a result."""
    if r["vector_counts"] is None:
        return None
    return "; ".join(f"{c['embedding']}: {c['iterate']}, {c['gradient']}" for c in r["vector_counts"]) or "none found"


def _with_bos(count: int | None, bos: bool | None) -> list | None:
    """An ids-scanned cell that says the scan's BOS setting: sorted by the count, shown as '16,384 (no BOS)'."""
    return None if count is None else [count, f"{number(count)} ({'BOS' if bos else 'no BOS'})"]


def _ids_text(r: dict[str, Any]) -> str | None:
    if r["id_start"] is None:
        return None
    full = bool(r["vocab_size"]) and r["id_start"] == 0 and r["id_stop"] >= r["vocab_size"] and r["complete"]
    return (f"all {r['vocab_size']:,}" if full else
            f"ids {id_range(r['id_start'], r['id_stop'])} of {number(r['vocab_size'])} (slice"
            + ("" if r["complete"] else ", interrupted") + ")")


def seed_difference(r: dict[str, Any], seed: data.SeedConventions) -> str:
    """One sentence: which of our conventions differ from the seed's, and so what explains the counts' gap."""
    reasons = []
    if r["quantization"] and seed.quantization == "none":
        reasons.append(f"{r['quantization'].split(' GGUF')[0]} quantization (the seed ran the unquantized weights)")
    if r["dtype"] and r["dtype"] != seed.dtype:
        reasons.append(f"{r['dtype']} weights (the seed's were {seed.dtype})")
    if r["bos"] and not seed.bos:
        reasons.append("a BOS prefix (the seed fed the token alone)")
    full = _ids_text(r)
    if full and not full.startswith("all"):
        share = f"{r['token_fps'] / r['tokens_scanned']:.1%} of the slice"
        seed_share = (f" against the seed's {r['seed_token_fps'] / r['seed_vocab']:.1%} of the vocabulary"
                      if r["seed_vocab"] else "")
        reasons.append(f"a slice of the vocabulary (FPs are {share}{seed_share})")
    if r["embeddings"] and seed.embedding not in r["embeddings"]:
        reasons.append(f"vector FPs in the {', '.join(r['embeddings'])} embedding space (the seed's: {seed.embedding})")
    counts = ("" if r["token_fps"] is None else
              f": {number(r['token_fps'])} vs {number(r['seed_token_fps'])} token FPs")
    if not reasons:
        return (f"Same conventions as the seed{counts}; a gap is down to library versions or hardware."
                if r["token_fps"] != r["seed_token_fps"] else f"Same conventions and the same count{counts}.")
    sentence = f"{'; '.join(reasons)}{counts}."
    return sentence[0].upper() + sentence[1:]


def _scans_table(store: Store, pages: dict[str, str], page_size: int, model: str | None = None) -> dict[str, Any]:
    """Scans and their settings; on a model page, with and without BOS side by side shows what BOS changes."""
    return table("scans", [
        ("scan", "id"), ("model", "link"), ("primary", "text"), ("dtype", "text"), ("BOS", "text"),
        ("device", "text"), ("method", "text"), ("ids", "text"), ("scanned", "num"), ("FPs", "num"),
        ("re-checked", "num"), ("flipped", "num"), ("complete", "text"), ("seconds", "num:1")], [
        [num(s["scan_id"]), link(pages[s["model"]], s["model"]) if s["model"] in pages else token_cell(s["model"]),
         "yes" if s["is_primary"] else "", s["dtype"], "yes" if s["bos"] else "no", text_cell(s["device"]),
         text_cell(s["method"]), id_range(s["id_start"], s["id_stop"]), num(s["tokens_scanned"]),
         num(s["fp_count"]), num(s["rechecked"]), num(s["flipped"]), "yes" if s["complete"] else "no",
         num(s["seconds"])]
        for s in data.scan_rows(store, model)], page_size=page_size, empty="no scans yet")


def _partial_note(m: dict[str, Any]) -> str | None:
    """Say so when the primary scan is a slice or was interrupted: its counts are not the vocabulary's."""
    if m["scan_id"] is None:
        return None
    vocab = m["vocab_size"]
    sliced = bool(vocab) and m["id_stop"] - m["id_start"] < vocab
    if m["complete"] and not sliced:
        return None
    return (f"This scan covers ids {id_range(m['id_start'], m['id_stop'])}"
            + (f" of a {vocab:,}-token vocabulary" if vocab else "")
            + ("" if m["complete"] else " and was interrupted")
            + ": counts are for that slice, not the whole vocabulary.")


def model_context(store: Store, m: dict[str, Any], pages: dict[str, str], page_size: int) -> dict[str, Any]:
    name = m["model"]
    fps = all_fps(store, name)
    ctx: dict[str, Any] = {"model": {"name": token_cell(name), "name_flat": flat(name)}, "token_fp_count": len(fps),
                           "scanned": m["scan_id"] is not None}
    ctx["cards"] = [{"value": number(m["token_fps"]), "label": "token FPs"},
                    {"value": number(m["tokens_scanned"] or 0), "label": "ids scanned"},
                    {"value": number(m["verified"]), "label": "verified in float64"},
                    {"value": "–" if m["vector_fps"] is None else number(m["vector_fps"]), "label": "vector FPs"},
                    {"value": number(m["flagged"]), "label": "flagged tokens"},
                    {"value": number(m["traced"]), "label": "tokens traced in data"}]
    ctx["settings"] = [(k, flat(v)) for k, v in (
        ("family", m["family"]), ("variant", m["variant"]), ("quantization", m["quantization"] or "none"),
        ("source", m["source_kind"]), ("hub id", m["hub_id"]), ("vocabulary", number(m["vocab_size"])),
        ("scan dtype", m["dtype"]), ("BOS", None if m["bos"] is None else ("yes" if m["bos"] else "no")),
        ("method", m["method"]), ("scans", m["n_scans"])) if v is not None]
    ctx["partial_note"] = _partial_note(m)
    ctx["scans_table"] = _scans_table(store, pages, page_size, name)
    ctx["scan_comparison_table"] = table("scancmp", [
        ("scan", "id"), ("BOS", "text"), ("dtype", "text"), ("ids both cover", "text"), ("FPs (primary)", "num"),
        ("FPs (this scan)", "num"), ("FPs of both", "num")], [
        [num(c["scan_id"]), "yes" if c["bos"] else "no", c["dtype"], id_range(c["lo"], c["hi"]),
         num(c["primary_fps"]), num(c["other_fps"]), num(c["both_fps"])] for c in data.scan_comparison(store, name)],
        page_size=page_size, empty="no other scan overlaps the primary one")
    ctx.update(_bos_block(store, name, page_size))
    ctx["pair_table"] = _base_vs_inst_table(store, pages, page_size, name)
    ctx["pair_changes_table"] = table("changes", [("change", "text"), ("id", "id"), ("text", "tok"),
                                                  ("p base", "num:6"), ("p inst", "num:6")], [
        [change, num(i), token_cell(t), num(pb), num(pi)] for change, i, t, pb, pi in data.pair_changes(store, name)],
        page_size=page_size)
    bins = data.probability_histogram(store, name)
    n_fps = sum(c for _, _, c in bins)
    ctx["histogram"] = charts.histogram(bins, label=f"FP probabilities (n = {n_fps:,} FPs)",
                                        x_label=f"p(t | t) of the FPs (n = {n_fps:,})", y_label="FPs")
    ctx["categories_chart"] = charts.bars([(c or "?", n) for c, n in data.category_counts(store, name)],
                                          label="FP categories")
    ctx.update(fp_tables(store, name, fps, page_size))
    rates = rule_rates(store)       # each reason beside its rule's rate measured by the validation study
    ctx["flags_table"] = table("flags", [("id", "id"), ("text", "tok"), ("score", "num:3"), ("rules", "num"),
                                         ("flags", "text"), ("reasons", "text"), rates.column], [
        [num(i), token_cell(t), num(s), num(n), listing(rules), listing(reasons, " | "), rates.cell(rules)]
        for i, t, s, n, rules, reasons in data.flagged_tokens(store, name)],
        page_size=page_size, empty="no token breaks a suspicion rule (see the rules on the index page)")
    ctx["flag_findings"] = model_flag_findings(store, name)
    sql_literal = name.replace("'", "''")          # the model name inside the SQL the notes suggest
    ctx["flags_note"] = (f"Reasons for the {data.FLAG_DETAIL_TOKENS:,} highest scores of {m['flagged']:,} flagged "
                         f"tokens (the FP table lists every token's flags); all: fpprov sql \"FROM suspicious_tokens "
                         f"WHERE model = '{sql_literal}'\"") if m["flagged"] > data.FLAG_DETAIL_TOKENS else None
    ctx.update(vector_section(store, name, page_size))
    ctx.update(provenance_section(store, name, page_size))
    ctx["top_evidence_table"] = top_evidence_table(store, name, page_size, ctx["snippet_ids"])
    ctx.update(evidence_section(store, name, page_size))
    ctx.update(undertrained_section(store, name, page_size))
    return ctx


def _bos_block(store: Store, name: str, page_size: int) -> dict[str, Any]:
    """The primary no-BOS scan against a BOS scan over the ids both cover, and the most probable FPs the BOS
    prefix lost and gained (the seed's counts are no-BOS counts: docs/bos.md)."""
    c = data.bos_comparison(store, name)
    if c is None:
        return {"bos": None}
    summary = table("bos", [("ids both cover", "text"), ("FPs without BOS", "num"), ("FPs with BOS", "num"),
                            ("FPs both ways", "num"), ("lost with BOS", "num"), ("gained with BOS", "num"),
                            ("scans (no BOS, BOS)", "text")], [
        [id_range(c["lo"], c["hi"]), num(c["plain_fps"]), num(c["bos_fps"]), num(c["both_fps"]), num(c["lost"]),
         num(c["gained"]), f"{c['plain_scan']}, {c['bos_scan']}{'' if c['bos_complete'] else ' (interrupted)'}"]],
        page_size=page_size)
    changes = table("boschanges", [("change", "text"), ("id", "id"), ("text", "tok"), ("vocabulary entry", "tok"),
                                   ("p without BOS", "num:6"), ("p with BOS", "num:6")], [
        [change, num(i), token_cell(t), token_cell(raw), num(p0), num(p1)]
        for change, i, t, raw, p0, p1 in data.bos_changes(store, name)],
        page_size=page_size, empty="a BOS prefix changes no FP here")
    note = (f"Over ids {id_range(c['lo'], c['hi'])} ({c['dtype']}), {c['plain_fps']:,} tokens are FPs without BOS "
            f"and {c['bos_fps']:,} with it; {c['both_fps']:,} are FPs both ways.")
    return {"bos": {"note": note, "summary": summary, "changes": changes, "top": data.TOP_N}}


def _base_vs_inst_table(store: Store, pages: dict[str, str], page_size: int, model: str | None = None) -> dict:
    return table("bvi", [("family", "text"), ("base", "link"), ("inst", "link"), ("ids compared", "text"),
                         ("base FPs", "num"), ("inst FPs", "num"), ("kept", "num"), ("lost", "num"),
                         ("gained", "num"), ("kept share", "num:3")], [
        [text_cell(r["family"]), link(pages[r["base_model"]], r["base_model"]),
         link(pages[r["inst_model"]], r["inst_model"]), id_range(r["id_start"], r["id_stop"]), num(r["base_fps"]),
         num(r["inst_fps"]), num(r["kept"]), num(r["lost"]), num(r["gained"]), num(r["kept_share"])]
        for r in data.base_vs_inst_rows(store, model)], page_size=page_size, empty="no base/instruct pair scanned yet")


def shared_context(store: Store, models: list[dict], pages: dict[str, str], page_size: int) -> dict[str, Any]:
    overlap = data.overlap_rows(store)
    scanned = [m for m in models if m["scan_id"] is not None]
    names = [m["model"] for m in scanned]
    by_pair = {(r["model_a"], r["model_b"]): r for r in overlap}
    matrix_rows = []
    for m in scanned:
        cells = []
        for other in names:
            if other == m["model"]:
                cells.append({"text": number(m["token_fps"]), "alpha": "0.35", "title": "FP texts of this model"})
                continue
            r = by_pair.get((m["model"], other))
            jac = (r or {}).get("jaccard") or 0.0
            cells.append({"text": number((r or {}).get("shared", 0)), "alpha": f"{min(jac, 1):.3f}",
                          "title": f"Jaccard {jac:.3f}"})
        matrix_rows.append({"label": token_cell(m["model"]), "href": pages[m["model"]], "cells": cells})
    matrix = {"models": [{"label": token_cell(n), "href": pages[n]} for n in names], "rows": matrix_rows}
    bvi = _base_vs_inst_table(store, pages, page_size)
    shared = table("shared", [("text", "tok"), ("families", "num"), ("models", "num"), ("family names", "text"),
                              ("model names", "text"), ("vocabulary entries", "tok"), ("mean p", "num:6")], [
        [token_cell(t), num(nf), num(nm), listing(fams), listing(mods), listing(raws, " | "), num(p)]
        for t, nf, nm, fams, mods, raws, p in data.shared_rows(store)],
        page_size=page_size, empty="no FP text is shared by two scanned models")
    return {"matrix": matrix, "base_vs_inst_table": bvi, "shared_table": shared, **attribution_context(store, pages)}
