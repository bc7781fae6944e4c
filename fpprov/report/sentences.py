"""The sentences the pages claim things in, written once: how a corpus is named (a proxy unless known to be the
model's training data) and what may be said about FPs against their matched controls in it. The index's findings
block and the model page's evidence section both use them, so the two never tell different stories.

A sentence is a list of (css class, text) parts: the corpus's label is its own part, class 'proxy-label' or
'training-label', so a page can mark it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..db.store import Store
from ..evidence.effect import LESS, MEANINGFUL_AUC, MIN_TOKENS, MORE, NONE, TOO_FEW, effect_verdict, share_difference
from .text import flat, percent_text, plural

PROXY_NOTE = "proxy: not this model's training data"
TRAINING_NOTE = "this model's training data"

Parts = list[tuple[str, str]]


def corpus_phrase(index_name: str, proxy: bool | None) -> str:
    """'corpus X (proxy: not this model's training data)': how every page names a traced index."""
    return f"corpus {flat(index_name)} ({PROXY_NOTE if proxy is None or proxy else TRAINING_NOTE})"


def corpus_parts(index_name: str, proxy: bool | None) -> Parts:
    """The same phrase as parts, the label in its own part."""
    proxy = proxy is None or bool(proxy)
    return [("", f"corpus {flat(index_name)} "),
            ("proxy-label" if proxy else "training-label", f"({PROXY_NOTE if proxy else TRAINING_NOTE})")]


def plain(parts: Parts) -> str:
    return "".join(text for _, text in parts)


@dataclass(frozen=True)
class AnyRun:
    """Tokens whose text repeated n times occurs at all, FPs against controls, and the difference's 95% CI."""
    k_fp: int
    n_fp: int
    k_control: int
    n_control: int
    difference: float
    low: float
    high: float


def any_runs(store: Store, model: str) -> dict[tuple[str, str], AnyRun]:
    """(backend, index) -> the shares with any n-fold run: fp_effects' stored numbers (Newcombe CI), else the same
    counted from token_evidence (a run before fp_effects)."""
    out: dict[tuple[str, str], AnyRun] = {}
    for b, i, k1, n1, k2, n2, d, lo, hi in store.query(
            "SELECT backend, index_name, fp_any, n_fp, control_any, n_control, any_diff, any_diff_low, any_diff_high "
            "FROM fp_effects WHERE model = ?", [model]):
        out[(b, i)] = AnyRun(k1, n1, k2, n2, d, lo, hi)
    counted: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
    for b, i, role, k, n in store.query("""
            SELECT backend, index_name, role, count(*) FILTER (WHERE repeat_count > 0), count(*)
            FROM token_evidence WHERE model = ? AND rate IS NOT NULL AND NOT isnan(rate) GROUP BY ALL""", [model]):
        counted.setdefault((b, i), {})[role] = (int(k), int(n))
    for key, roles in counted.items():
        if key not in out and "fp" in roles and "control" in roles:
            d = share_difference(*roles["fp"], *roles["control"])
            out[key] = AnyRun(d.k_fp, d.n_fp, d.k_control, d.n_control, d.difference, d.low, d.high)
    return out


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def effect_sentence(r: dict[str, Any], corpus: Parts, runs: AnyRun | None, n: int | None) -> tuple[Parts, str]:
    """FPs against their matched controls in one corpus: what may be said (the rule: |AUC - 0.5| >= MEANINGFUL_AUC
    and a CI that excludes 0.5, over at least MIN_TOKENS tokens a side), the AUC with its CI and n, and the share of
    tokens with any n-fold run with the difference's CI. r: auc, auc_low, auc_high, n_fp, n_control, reason and
    optionally effect (fp_effects' stored verdict). Returns the parts and the verdict."""
    auc, low, high = _number(r["auc"]), _number(r["auc_low"]), _number(r["auc_high"])
    if auc is None and runs is None:
        why = r["reason"] or "run `fpprov provenance --controls` to compare FPs with matched controls"
        return [("", "No FP vs control comparison in "), *corpus, ("", f": {flat(why)}.")], TOO_FEW
    verdict = r.get("effect") or effect_verdict(auc, low, high, r["n_fp"], r["n_control"])
    head = {MORE: "FPs repeat more often than their matched controls in ",
            LESS: "FPs repeat less often than their matched controls in ",
            NONE: "No meaningful difference between FPs and their matched controls in "}.get(
        verdict, "Too few to say whether FPs and their matched controls differ in ")
    rule = {NONE: f"; |AUC − 0.5| < {MEANINGFUL_AUC} or the CI includes 0.5",
            TOO_FEW: f"; under {MIN_TOKENS} tokens a side, or no CI"}.get(verdict, "")
    ci = "no CI" if low is None or high is None else f"95% CI {low:.3f}–{high:.3f}"
    auc_text = "no AUC" if auc is None else f"AUC {auc:.3f} ({ci}; 0.5 = no difference{rule})"
    text = f": {auc_text} over {plural(r['n_fp'] or 0, 'FP')} and {plural(r['n_control'] or 0, 'control')}."
    if runs is not None and runs.n_fp and runs.n_control:
        text += (f" Text repeated {n or 'n'} times occurs for {runs.k_fp:,} of {runs.n_fp:,} FPs "
                 f"({percent_text(runs.k_fp / runs.n_fp)}) and {runs.k_control:,} of {runs.n_control:,} controls "
                 f"({percent_text(runs.k_control / runs.n_control)}): a difference of {100 * runs.difference:+.1f} "
                 f"points (95% CI {100 * runs.low:+.1f} to {100 * runs.high:+.1f}).")
    return [("", head), *corpus, ("", text)], verdict
