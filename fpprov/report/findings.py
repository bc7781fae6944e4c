"""The findings block that opens index.html: per model and corpus, the sentences a reviewer would sign.

Each finding is one sentence with its effect size, CI and n: (a) the model's FP rate (Wilson CI over the ids
scanned), (b) the FP-vs-control effect in each corpus (fp_effects' share with any n-fold run and its Newcombe
CI, fp_enrichment's AUC; ``effect`` says what may be said), (c) flagged FPs against flagged controls under the
same rule (suspicious_tokens), (d) the under-trained share of FPs against non-FPs (fp_undertrained). A corpus
is named "corpus X (proxy: not this model's training data)" unless it is known to be the training data, and a
statistic from too few tokens (or without a CI) is marked ``few``: greyed, "too few to say". The chart: the
share of FPs and of controls with any n-fold run, with Wilson CIs, per model and corpus.

Every item carries its numbers as data attributes (k, n, estimate, CI) so a test or a script can read them
from the page without parsing words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from . import charts
from ..db.store import Store
from ..evidence.effect import MIN_TOKENS, TOO_FEW
from ..evidence.intervals import wilson_interval
from .sentences import AnyRun, any_runs, corpus_parts, effect_sentence
from .text import flat, id_range, percent_text, token_cell


@dataclass
class Finding:
    """One sentence: ``parts`` are (css class, text) pieces, the class 'proxy-label' / 'training-label' on the
    corpus's label; ``data`` its numbers for data-* attributes."""
    kind: str                       # fp_rate | effect | flags | undertrained
    parts: list[tuple[str, str]]
    few: bool = False               # too few tokens, or no CI: greyed, "too few to say"
    data: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelFindings:
    model: Any                      # text cell of the model name
    href: str | None
    name: str                       # flat name (data-model)
    items: list[Finding]
    chart: Markup | None = None     # share of FPs and of controls with any n-fold run per corpus, Wilson CIs


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "no CI"
    return f"95% CI {percent_text(low)}–{percent_text(high)}"


def _share(k: int, n: int, noun: str) -> tuple[str, dict[str, str]]:
    """'32 of 3,532 FPs (0.91%, 95% CI 0.64%–1.3%)' and its data attributes."""
    low, high = wilson_interval(k, n) if 0 <= k <= n and n else (math.nan, math.nan)
    text = f"{k:,} of {n:,} {noun} ({percent_text(k / n) if n else 'n/a'}, {_interval(low, high)})"
    return text, {"k": str(k), "n": str(n), "low": _attr(low), "high": _attr(high)}


def _attr(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


# -- SQL ------------------------------------------------------------------------------------------------
def corpus_rows(store: Store) -> list[dict[str, Any]]:
    """One row per (model, index) traced or compared: proxy or not (a proxy unless known to be the model's
    training data), the run's n, fp_enrichment's AUC, fp_effects' shares."""
    return store.query_dicts("""
        WITH k AS (
            SELECT model, backend, index_name FROM traced_indexes
            UNION SELECT model, backend, index_name FROM evidence_runs
            UNION SELECT model, backend, index_name FROM fp_enrichment
        )
        SELECT k.model, k.backend, k.index_name, coalesce(t.index_is_proxy, r.index_is_proxy, true) AS index_is_proxy,
               r.n AS run_n, e.n_fp, e.n_control, e.auc, e.auc_low, e.auc_high, e.reason, x.effect
        FROM k
        LEFT JOIN traced_indexes t USING (model, backend, index_name)
        LEFT JOIN evidence_runs r USING (model, backend, index_name)
        LEFT JOIN fp_enrichment e USING (model, backend, index_name)
        LEFT JOIN fp_effects x USING (model, backend, index_name)
        ORDER BY k.model, k.index_name, k.backend
    """)


def flag_rows(store: Store) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(model, backend, index) -> per rule: FPs and controls with an n-fold run and how many the rule flags
    (the flag_rates view, kept by data.prepare_flags for the whole report: every rule, also one that flags nothing)."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in store.query_dicts("FROM report_flag_rates ORDER BY model, backend, index_name, rule"):
        out.setdefault((r["model"], r["backend"], r["index_name"]), []).append(r)
    return out


def undertrained_rows(store: Store) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in store.query_dicts("""
        SELECT f.*, u.reference_rule, u.tied_head, u.n_undertrained
        FROM fp_undertrained f LEFT JOIN undertrained_runs u USING (model)""")}


# -- sentences ------------------------------------------------------------------------------------------
def fp_rate(m: dict[str, Any]) -> Finding | None:
    """(a) FPs among the ids the primary scan covered, with a Wilson CI."""
    if m["scan_id"] is None or not m["tokens_scanned"]:
        return None
    share, data = _share(m["token_fps"], m["tokens_scanned"], "ids scanned")
    vocab = m["vocab_size"]
    whole = bool(vocab) and m["id_start"] == 0 and m["id_stop"] >= vocab
    scope = (f"the whole {vocab:,}-token vocabulary" if whole else
             f"ids {id_range(m['id_start'], m['id_stop'])}" + (f" of a {vocab:,}-token vocabulary" if vocab else ""))
    text = (f"Token FPs: {share}; the scan covered {scope}"
            + ("" if m["complete"] else " and was interrupted") + ".")
    return Finding("fp_rate", [("", text)], data={**data, "estimate": _attr(m["token_fps"] / m["tokens_scanned"])})


def effect(r: dict[str, Any], runs: AnyRun | None) -> Finding:
    """(b) FPs against their matched controls in one corpus: what may be said, the AUC with its CI and n, and the
    difference in the share of tokens with any n-fold run with its CI (the sentence of sentences.py)."""
    corpus = corpus_parts(r["index_name"], r["index_is_proxy"])
    parts, verdict = effect_sentence(r, corpus, runs, r["run_n"])
    if r["auc"] is None and runs is None:
        return Finding("effect", parts, few=True, data={"effect": verdict, "compared": "no"})
    data = {"effect": verdict, "auc": _attr(r["auc"]), "auc-low": _attr(r["auc_low"]),
            "auc-high": _attr(r["auc_high"]), "n-fp": str(r["n_fp"] or 0), "n-control": str(r["n_control"] or 0)}
    if runs is not None:
        data.update({"k-fp-any": str(runs.k_fp), "n-fp-any": str(runs.n_fp), "k-control-any": str(runs.k_control),
                     "n-control-any": str(runs.n_control), "diff": _attr(runs.difference),
                     "diff-low": _attr(runs.low), "diff-high": _attr(runs.high)})
    return Finding("effect", parts, few=verdict == TOO_FEW, data=data)


def flags(r: dict[str, Any], rules: list[dict[str, Any]], fp_any: int | None = None) -> list[Finding]:
    """(c) Per rule that fired in the corpus: FPs it flags among those with an n-fold run against the controls it
    would flag (controls' rate only for source_enriched: repetition_enriched is defined for FPs only)."""
    corpus = corpus_parts(r["index_name"], r["index_is_proxy"])
    run = f"{r['run_n']}-fold run" if r["run_n"] else "n-fold run"
    out = []
    for f in rules:
        fp_text, data = _share(f["fp_flagged"] or 0, f["fp_with_runs"] or 0, f"FPs with a {run}")
        data = {f"{k}-fp": v for k, v in data.items()} | {"rule": f["rule"], "index": r["index_name"]}
        text = f": {fp_text}"
        few = (f["fp_with_runs"] or 0) < MIN_TOKENS
        if f["control_flagged"] is not None and f["control_with_runs"]:
            c_text, c_data = _share(f["control_flagged"], f["control_with_runs"], "matched controls with one")
            data |= {f"{k}-control": v for k, v in c_data.items()}
            text += f" against {c_text}"
            few = few or f["control_with_runs"] < MIN_TOKENS
        elif f["control_flagged"] is not None:
            text += " against none of the matched controls, since none has a run (nothing to compare)"
            data |= {"k-control": "0", "n-control": "0"}
            few = True
        else:
            text += " (a rule defined for FPs only: no controls' rate)"
        if few:
            text += f"; too few to say (under {MIN_TOKENS} tokens with a run on a side)"
        out.append(Finding("flags", [("", f"Flagged by rule {f['rule']} in "), *corpus, ("", text + ".")],
                           few=few, data=data))
    if not rules:
        with_runs = f" (0 of {fp_any:,} FPs with an n-fold run)" if fp_any else ""
        out.append(Finding("flags", [("", "No FP is flagged in "), *corpus, ("", f"{with_runs}.")],
                           data={"k-fp": "0", "n-fp": str(fp_any or 0)}))
    return out


def flag_rates_text(rule: str | None, fp_flagged: int | None, fp_with_runs: int | None, control_flagged: int | None,
                    control_with_runs: int | None) -> str | None:
    """'source_enriched: 5 of 32 FPs (15.6%) vs 0 of 9 controls (0%)': how often the rule flags FPs with a run
    against the matched controls with one, in the corpus of the token's flag (suspicious_tokens)."""
    if rule is None:
        return None
    fps = f"{fp_flagged or 0:,} of {fp_with_runs or 0:,} FPs" + (
        f" ({percent_text(fp_flagged / fp_with_runs)})" if fp_with_runs else "")
    if control_flagged is None:
        return f"{rule}: {fps} (defined for FPs only)"
    controls = f"{control_flagged:,} of {control_with_runs or 0:,} controls" + (
        f" ({percent_text(control_flagged / control_with_runs)})" if control_with_runs else "")
    return f"{rule}: {fps} vs {controls}"


def undertrained(u: dict[str, Any] | None) -> Finding | None:
    """(d) FPs that are under-trained candidates against non-FP ids of the same range, each with a Wilson CI."""
    if u is None or u["ids"] is None:
        return None
    if u["reference_rule"] == "none" and u["tied_head"] and not u["n_undertrained"]:
        return Finding("undertrained", [("", "Under-trained share: not defined (no reference set and tied "
                                             "embeddings: magikarp's indicator is undefined, so no id is a candidate).")],
                       few=True, data={})
    n_fp = u["fp_undertrained"] + u["fp_trained"]
    n_other = u["nonfp_undertrained"] + u["nonfp_trained"]
    fp_text, data = _share(u["fp_undertrained"], n_fp, "FPs")
    other_text, other = _share(u["nonfp_undertrained"], n_other, "other ids scanned")
    data = {f"{k}-fp": v for k, v in data.items()} | {f"{k}-other": v for k, v in other.items()}
    few = n_fp < MIN_TOKENS
    text = (f"Under-trained candidates (magikarp's indicator, weights only): {fp_text} against {other_text}"
            + (f"; too few FPs to say (under {MIN_TOKENS})" if few else "") + ".")
    return Finding("undertrained", [("", text)], few=few, data=data)


def model_flag_findings(store: Store, model: str) -> list[Finding]:
    """The model page's flag rates: per corpus and rule, flagged FPs against flagged controls."""
    flagged = flag_rows(store)
    return [f for r in corpus_rows(store) if r["model"] == model
            for f in flags(r, flagged.get((model, r["backend"], r["index_name"]), [])) if f.data.get("rule")]


def findings_context(store: Store, models: list[dict[str, Any]], pages: dict[str, str]) -> dict[str, Any]:
    """The findings block: per model, its sentences and the chart of shares with any n-fold run (its own axis:
    one model's shares of a few percent are not squeezed by another's 100%)."""
    corpora, flagged, under = corpus_rows(store), flag_rows(store), undertrained_rows(store)
    groups = []
    for m in models:
        chart_items, muted = [], []
        name = m["model"]
        items = [f for f in (fp_rate(m), undertrained(under.get(name))) if f is not None]
        runs = any_runs(store, name) if any(r["model"] == name for r in corpora) else {}
        for r in (r for r in corpora if r["model"] == name):
            found = effect(r, runs.get((r["backend"], r["index_name"])))
            items.append(found)
            with_runs = found.data.get("k-fp-any")
            rules = flagged.get((name, r["backend"], r["index_name"]), [])
            if rules or found.data.get("compared") != "no":      # no comparison: nothing to flag against
                items.extend(flags(r, rules, int(with_runs) if with_runs else None))
            for role, label in (("fp", "FPs"), ("control", "controls")):
                k, n = (int(found.data[f"k-{role}-any"]), int(found.data[f"n-{role}-any"])) \
                    if f"k-{role}-any" in found.data else (None, None)
                if n:
                    low, high = wilson_interval(k, n)
                    chart_items.append((f"{flat(r['index_name'])} · {label}: {k:,} of {n:,}", k / n, low, high))
                    muted.append(role == "control" or found.few)
        chart = (charts.share_intervals(
            chart_items, label=f"{flat(name)}: share of FPs and of matched controls with any n-fold run",
            x_label="share of tokens whose text repeated n times occurs (95% Wilson CI)", muted=muted, zoom=True)
            if chart_items else None)
        if items:
            groups.append(ModelFindings(model=token_cell(name), href=pages.get(name), name=flat(name), items=items,
                                        chart=chart))
    return {"findings": groups}

