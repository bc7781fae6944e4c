"""HTML reports: reports/index.html, one page per model and reports/shared.html, from jinja2 templates.

Pages are self-contained (inline CSS, inline SVG, one inline script allowed by its CSP hash, data as JSON
blocks) and safe for hostile text: autoescape is on, invisible characters become visible escapes
(report_text), and the table script only ever sets textContent.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Iterable

import jinja2
from markupsafe import Markup

from . import report_charts as charts
from . import report_data as data
from .errors import FpprovError
from .report_text import csp_hash, flat, number, page_names, script_json, snippet_cell, text_cell, token_cell
from .sql import open_read_only
from .store import Store

DEFAULT_PAGE_SIZE = 100


@dataclass
class ReportOutcome:
    index: Path
    pages: list[Path] = field(default_factory=list)
    models: int = 0
    seconds: float = 0.0
    snapshot: bool = False


# -- cells and tables -----------------------------------------------------------------------------------
def num(value: Any) -> Any:
    """A numeric cell. Plain numbers travel as themselves and are formatted at display time with the
    column's digits (report_text.number here, fmt() in table.js: same rules); booleans as [0/1, 'yes'/'no'];
    NaN and infinities (a diverged rollout) as [null, 'inf'], since JSON has no such numbers."""
    if value is None:
        return None
    if isinstance(value, bool):
        return [int(value), "yes" if value else "no"]
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return [None, str(value)]
    return value


def link(href: str, text: Any) -> list:
    return [href, token_cell(text)]


def listing(values: Iterable[Any] | None, sep: str = ", ") -> Any:
    return text_cell(sep.join(str(v) for v in values)) if values else None


def table(table_id: str, columns: list[tuple[str, str]], rows: list[list], *, page_size: int,
          empty: str | None = None, caption: str | None = None) -> dict[str, Any]:
    """A data table for the `data_table` macro. Columns are (label, type), type in num|id|tok|text|snip|link
    (id: an integer shown without separators);
    'num:6' is a number shown with up to 6 decimals (4 by default)."""
    types, digits = [], []
    for _, kind in columns:
        base, _, places = kind.partition(":")
        types.append(base)
        digits.append(int(places) if places else 4)
    # script_json escapes '<', '>' and '&', so the JSON cannot leave its <script type="application/json">.
    blob = Markup(script_json({"types": types, "digits": digits, "rows": rows, "pageSize": page_size}))
    # 'table-' prefix: a table's id never equals a section anchor (#flags, #vectors, ...)
    return {"id": f"table-{table_id}", "columns": [{"label": label, "type": t, "digits": d, "title": None}
                                        for (label, _), t, d in zip(columns, types, digits)],
            "rows": rows, "page_size": page_size, "json": blob, "empty": empty, "caption": caption}


# -- rendering ------------------------------------------------------------------------------------------
def _environment() -> jinja2.Environment:
    folder = resources.files("fpprov.templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text("utf-8")),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["number"] = number
    return env


def _write(path: Path, html: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    # backslashreplace: a lone surrogate that slipped past the escaping must not lose the whole page
    partial.write_text(html, encoding="utf-8", errors="backslashreplace")
    os.replace(partial, path)


def _version() -> str:
    try:
        return metadata.version("fpprov")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- pages ----------------------------------------------------------------------------------------------
def _index_context(store: Store, models: list[dict], pages: dict[str, str], page_size: int) -> dict[str, Any]:
    def model_link(name: str | None) -> list | None:
        return link(pages[name], name) if name in pages else (token_cell(name) if name else None)

    seed = [[text_cell(r["model"]), text_cell(r["family"]), model_link(r["base_model"]), num(r["base_token_fps"]),
             num(r["base_tokens_scanned"]), model_link(r["inst_model"]), num(r["inst_token_fps"]),
             num(r["inst_tokens_scanned"]), num(r["base_vector_fps"]), num(r["inst_vector_fps"]),
             num(r["base_vector_fps_iterate"]), num(r["inst_vector_fps_iterate"]),
             num(r["base_vector_fps_gradient"]), num(r["inst_vector_fps_gradient"])]
            for r in data.seed_rows(store)]
    seed_table = table("seed", [("model", "text"), ("family", "text"), ("base", "link"), ("token FPs base", "num"),
                                ("ids scanned", "num"), ("inst", "link"), ("token FPs inst", "num"),
                                ("ids scanned", "num"), ("vector FPs base", "num"), ("vector FPs inst", "num"),
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
                   f"{m['id_start']:,}–{m['id_stop']:,}{'' if m['complete'] else ' (interrupted)'}"),
         num(m["token_fps"]), num(m["verified"]), num(m["vector_fps"]), num(m["flagged"]), num(m["traced"])]
        for m in models], page_size=page_size, empty="no results yet: run `fpprov scan MODEL`")
    scans = _scans_table(store, pages, page_size)
    rules = table("rules", [("rule", "text"), ("threshold", "num:6"), ("min support", "num"), ("weight", "num"),
                            ("fires when", "text")],
                  [[r["rule"], num(r["threshold"]), num(r["min_support"]), num(r["weight"]),
                    text_cell(r["description"])] for r in data.thresholds(store)], page_size=page_size)
    suspicious = table("suspicious", [("model", "link"), ("id", "id"), ("text", "tok"), ("score", "num:3"),
                                      ("flags", "text"), ("reasons", "text")], [
        [link(pages[model], model) if model in pages else token_cell(model), num(token_id), token_cell(text),
         num(score), listing(rules), listing(reasons, " | ")]
        for model, token_id, text, score, rules, reasons in data.top_flags(store)],
        page_size=page_size, empty="no token breaks a suspicion rule")
    return {"seed_table": seed_table, "models_table": model_table, "scans_table": scans, "thresholds_table": rules,
            "suspicious_table": suspicious}


def _scans_table(store: Store, pages: dict[str, str], page_size: int, model: str | None = None) -> dict[str, Any]:
    """Scans and their settings; on a model page, with and without BOS side by side shows what BOS changes."""
    return table("scans", [
        ("scan", "id"), ("model", "link"), ("primary", "text"), ("dtype", "text"), ("BOS", "text"),
        ("device", "text"), ("method", "text"), ("ids", "text"), ("scanned", "num"), ("FPs", "num"),
        ("re-checked", "num"), ("flipped", "num"), ("complete", "text"), ("seconds", "num:1")], [
        [num(s["scan_id"]), link(pages[s["model"]], s["model"]) if s["model"] in pages else token_cell(s["model"]),
         "yes" if s["is_primary"] else "", s["dtype"], "yes" if s["bos"] else "no", text_cell(s["device"]),
         text_cell(s["method"]), f"{s['id_start']:,}–{s['id_stop']:,}", num(s["tokens_scanned"]),
         num(s["fp_count"]), num(s["rechecked"]), num(s["flipped"]), "yes" if s["complete"] else "no",
         num(s["seconds"])]
        for s in data.scan_rows(store, model)], page_size=page_size, empty="no scans yet")


def _fp_row(row: tuple) -> list:
    token_id, text, raw, category, prob, margin, verified, score, rules = row
    return [num(token_id), token_cell(text), token_cell(raw), category, num(prob), num(margin),
            "yes" if verified else "no", num(score), listing(rules)]


_FP_COLUMNS = [("id", "id"), ("text", "tok"), ("vocabulary entry", "tok"), ("category", "text"),
               ("p(t | t)", "num:6"), ("margin", "num"), ("float64", "text"), ("suspicion", "num:3"), ("flags", "text")]


def _partial_note(m: dict[str, Any]) -> str | None:
    """Say so when the primary scan is a slice or was interrupted: its counts are not the vocabulary's."""
    if m["scan_id"] is None:
        return None
    vocab = m["vocab_size"]
    sliced = bool(vocab) and m["id_stop"] - m["id_start"] < vocab
    if m["complete"] and not sliced:
        return None
    return (f"This scan covers ids {m['id_start']:,} to {m['id_stop']:,}"
            + (f" of a {vocab:,}-token vocabulary" if vocab else "")
            + ("" if m["complete"] else " and was interrupted")
            + ": counts are for that slice, not the whole vocabulary.")


def _model_context(store: Store, m: dict[str, Any], pages: dict[str, str], page_size: int) -> dict[str, Any]:
    name = m["model"]
    fps = data.all_fps(store, name)
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
        [num(c["scan_id"]), "yes" if c["bos"] else "no", c["dtype"], f"{c['lo']:,}–{c['hi']:,}",
         num(c["primary_fps"]), num(c["other_fps"]), num(c["both_fps"])] for c in data.scan_comparison(store, name)],
        page_size=page_size, empty="no other scan overlaps the primary one")
    ctx["pair_table"] = _base_vs_inst_table(store, pages, page_size, name)
    ctx["pair_changes_table"] = table("changes", [("change", "text"), ("id", "id"), ("text", "tok"),
                                                  ("p base", "num:6"), ("p inst", "num:6")], [
        [change, num(i), token_cell(t), num(pb), num(pi)] for change, i, t, pb, pi in data.pair_changes(store, name)],
        page_size=page_size)
    ctx["histogram"] = charts.histogram(data.probability_histogram(store, name), label="FP probabilities",
                                        x_label="p(t | t)")
    ctx["categories_chart"] = charts.bars([(c or "?", n) for c, n in data.category_counts(store, name)],
                                          label="FP categories")
    ctx["top_table"] = table("top", _FP_COLUMNS, [_fp_row(r) for r in data.extreme_fps(store, name, top=True)],
                             page_size=page_size)
    ctx["bottom_table"] = table("bottom", _FP_COLUMNS, [_fp_row(r) for r in data.extreme_fps(store, name, top=False)],
                                page_size=page_size)
    ctx["fps_table"] = table("fps", _FP_COLUMNS, [_fp_row(r) for r in fps], page_size=page_size)
    ctx["flags_table"] = table("flags", [("id", "id"), ("text", "tok"), ("score", "num:3"), ("rules", "num"),
                                         ("flags", "text"), ("reasons", "text")], [
        [num(i), token_cell(t), num(s), num(n), listing(rules), listing(reasons, " | ")]
        for i, t, s, n, rules, reasons in data.flagged_tokens(store, name)],
        page_size=page_size, empty="no token breaks a suspicion rule (see the rules on the index page)")
    sql_literal = name.replace("'", "''")          # the model name inside the SQL the notes suggest
    ctx["flags_note"] = (f"Reasons for the {data.FLAG_DETAIL_TOKENS:,} highest scores of {m['flagged']:,} flagged "
                         f"tokens (the FP table lists every token's flags); all: fpprov sql \"FROM suspicious_tokens "
                         f"WHERE model = '{sql_literal}'\"") if m["flagged"] > data.FLAG_DETAIL_TOKENS else None
    ctx.update(_vector_context(store, name, page_size))
    ctx.update(_provenance_context(store, name, page_size))
    return ctx


def _percent(weight: float) -> str:
    """A mixture weight as a percentage that does not round small weights to 0.0%."""
    return f"{100 * weight:.1f}%" if weight >= 0.001 else f"{100 * weight:.1e}%"


def _vector_context(store: Store, name: str, page_size: int) -> dict[str, Any]:
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
                                      value_format=_percent)}
                for v in vectors]
    return {"vector_runs_table": runs_table, "vectors_table": vec_table, "rollout_chart": rollout,
            "vectors": mixtures}


def _provenance_context(store: Store, name: str, page_size: int) -> dict[str, Any]:
    ns, rows = data.provenance_rows(store, name)

    def count_cell(entry: dict | None) -> list | None:
        if entry is None:
            return None
        if entry["status"] == "ok":
            return num(entry["count"])
        return [None, entry["status"].replace("_", " ")]

    prov = table("provenance", [("id", "id"), ("text", "tok"), ("index", "text"), ("spelling", "text")]
                 + [(f"n={n}", "num") for n in ns], [
        [num(r["token_id"]), token_cell(r["token_text"]),
         text_cell(r["index_name"] + (" (proxy)" if r["index_is_proxy"] else "")), r["variant"]]
        + [count_cell(r["by_n"].get(n)) for n in ns] for r in rows],
        page_size=page_size, empty="not traced yet: run `fpprov provenance`")
    shares = data.source_share_rows(store, name)
    sources = table("sources", [("id", "id"), ("text", "tok"), ("index", "text"), ("n", "num"),
                                ("spelling", "text"), ("sampled", "num"), ("top source share", "num"),
                                ("sources", "text")], [
        [num(r["token_id"]), token_cell(r["token_text"]), text_cell(r["index_name"]), num(r["n"]), r["variant"],
         num(r["sampled"]), [r["shares"][0]["share"], f"{100 * r['shares'][0]['share']:.0f}%"],
         text_cell(", ".join(f"{s['source']} {100 * s['share']:.0f}% ({s['docs']})" for s in r["shares"]))]
        for r in shares], page_size=page_size, empty="no documents sampled yet")
    snippets = table("snippets", [("id", "id"), ("text", "tok"), ("n", "num"), ("spelling", "text"),
                                  ("source", "text"), ("snippet", "snip")], [
        [num(r["token_id"]), token_cell(r["token_text"]), num(r["n"]), r["variant"], text_cell(r["source"]),
         snippet_cell(r["snippet"], r["query"], r["needle_offset"])] for r in data.snippet_rows(store, name)],
        page_size=page_size, empty="no documents sampled yet")
    proxies = sorted({r["index_name"] for r in rows if r["index_is_proxy"]})
    note = (f"Counts from {', '.join(proxies)}: a public corpus standing in for this model's undisclosed "
            "training data, not the data itself.") if proxies else None
    sampled = data.sampled_token_count(store, name)
    sql_literal = name.replace("'", "''")
    detail_note = (f"Sources and snippets of the {data.DETAIL_TOKENS:,} most suspicious, then most frequent, of the "
                   f"{sampled:,} tokens with sampled documents; the rest: fpprov sql \"FROM source_shares WHERE "
                   f"model = '{sql_literal}'\"") if sampled > data.DETAIL_TOKENS else None
    return {"provenance_table": prov, "sources_table": sources, "snippets_table": snippets, "proxy_note": note,
            "detail_note": detail_note}


def _base_vs_inst_table(store: Store, pages: dict[str, str], page_size: int, model: str | None = None) -> dict:
    return table("bvi", [("family", "text"), ("base", "link"), ("inst", "link"), ("ids compared", "text"),
                         ("base FPs", "num"), ("inst FPs", "num"), ("kept", "num"), ("lost", "num"),
                         ("gained", "num"), ("kept share", "num:3")], [
        [text_cell(r["family"]), link(pages[r["base_model"]], r["base_model"]),
         link(pages[r["inst_model"]], r["inst_model"]), f"{r['id_start']:,}–{r['id_stop']:,}", num(r["base_fps"]),
         num(r["inst_fps"]), num(r["kept"]), num(r["lost"]), num(r["gained"]), num(r["kept_share"])]
        for r in data.base_vs_inst_rows(store, model)], page_size=page_size, empty="no base/instruct pair scanned yet")


def _shared_context(store: Store, models: list[dict], pages: dict[str, str], page_size: int) -> dict[str, Any]:
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
    return {"matrix": matrix, "base_vs_inst_table": bvi, "shared_table": shared}


def build_reports(db: str | os.PathLike, out_dir: str | os.PathLike = "reports", *,
                  threshold_overrides: dict[str, float] | None = None, models: list[str] | None = None,
                  page_size: int = DEFAULT_PAGE_SIZE) -> ReportOutcome:
    """Write index.html, shared.html and one page per model (or per model named) into out_dir."""
    out = Path(out_dir).expanduser()
    created = first_missing_folder(out)
    try:
        return _build_reports(db, out, threshold_overrides, models, page_size)
    except BaseException:
        remove_folder(created)   # a failed run leaves no folder it made behind
        raise


def first_missing_folder(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet: what ``mkdir(parents=True)`` would create."""
    top = None
    for folder in [path, *path.parents]:
        if folder.exists() or folder.is_symlink():
            break
        top = folder
    return top


def remove_folder(folder: Path | None) -> None:
    if folder is not None and folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder, ignore_errors=True)


def _build_reports(db: str | os.PathLike, out: Path, threshold_overrides: dict[str, float] | None,
                   models: list[str] | None, page_size: int) -> ReportOutcome:
    started = time.perf_counter()
    env = _environment()
    table_js = resources.files("fpprov.templates").joinpath("table.js").read_text("utf-8")
    with open_read_only(db, upgrade=True) as ro:
        store = ro.store
        data.apply_threshold_overrides(store, threshold_overrides or {})
        data.prepare_flags(store)
        all_models = data.model_rows(store)
        known = {m["model"] for m in all_models}
        missing = sorted(set(models or []) - known)
        if missing:
            raise FpprovError(f"no results for model {', '.join(missing)} in {db}; models: {', '.join(sorted(known)) or 'none'}")
        try:  # only once the database opened and the options are checked: no empty folder on a bad input
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FpprovError(f"cannot create report folder {out}: {exc.strerror}") from None
        pages = page_names([m["model"] for m in all_models])
        common = {"script_hash": csp_hash(table_js), "table_js": Markup(table_js), "version": _version(),
                  "db_name": Path(db).name, "snapshot": ro.snapshot,
                  "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        outcome = ReportOutcome(index=out / "index.html", snapshot=ro.snapshot, models=len(all_models))
        _write(outcome.index, env.get_template("index.html").render(
            **common, **_index_context(store, all_models, pages, page_size)))
        for m in all_models:
            if models and m["model"] not in models:
                continue
            path = out / pages[m["model"]]
            _write(path, env.get_template("model.html").render(**common, **_model_context(store, m, pages, page_size)))
            outcome.pages.append(path)
        shared_path = out / "shared.html"
        _write(shared_path, env.get_template("shared.html").render(
            **common, **_shared_context(store, all_models, pages, page_size)))
        outcome.pages.append(shared_path)
    outcome.seconds = time.perf_counter() - started
    return outcome
