"""Ground truth against what the pipeline found, per token: every planted word and twin (validation_tokens),
the dose-response (validation_dose_response) and each flag rule's sensitivity beside its false-flag rate
(validation_flag_rates).

Flags are judged in each organism's own index (the question is whether fpprov traces a planted word to the
data it was planted in): repetition_enriched is ``token_evidence.q_value <= threshold``; source_enriched is the
token condition of the ``suspicious_tokens`` view (the ``source_rule_hits`` view), applied to FPs and controls alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..db.store import Store
from ..evidence.effect import share_difference
from ..evidence.intervals import wilson_interval
from .design import StudyDesign
from .organisms import PlantedPair

RULES = ("repetition_enriched", "source_enriched")


@dataclass(frozen=True)
class OrganismRow:
    """What the measurements need of one organism."""
    organism: str
    model: str
    index_name: str | None
    is_null: bool
    corpus_tokens: int


def threshold(store: Store, rule: str) -> tuple[float, float]:
    row = store.query("SELECT threshold, coalesce(min_support, 0) FROM suspicion_thresholds WHERE rule = ?", [rule])
    return (float(row[0][0]), float(row[0][1])) if row else (math.nan, 0.0)


def source_hits(store: Store, model: str, index_name: str) -> dict[tuple[int, str], str]:
    """(token_id, role) -> the source the source_enriched condition names (the strongest), in one index: the
    ``source_rule_hits`` view, the condition ``suspicious_tokens`` applies, for FPs and controls alike."""
    rows = store.query(
        """SELECT token_id, role, source FROM source_rule_hits WHERE model = ? AND index_name = ?
           QUALIFY row_number() OVER (PARTITION BY token_id, role ORDER BY enrichment_low DESC, source) = 1""",
        [model, index_name])
    return {(int(t), role): source for t, role, source in rows}


def evidence(store: Store, model: str, index_name: str) -> dict[tuple[int, str], tuple[float | None, float, int]]:
    """(token_id, role) -> (q value, rate, repeat count) in one index."""
    rows = store.query("SELECT token_id, role, q_value, rate, repeat_count FROM token_evidence "
                       "WHERE model = ? AND index_name = ?", [model, index_name])
    return {(int(t), role): (q, rate, int(rc)) for t, role, q, rate, rc in rows}


def fps(store: Store, model: str) -> dict[int, float]:
    return {int(t): float(p) for t, p in store.query("SELECT token_id, prob FROM primary_fps WHERE model = ?", [model])}


def token_rows(store: Store, study_id: str, organisms: dict[str, OrganismRow], pairs: list[PlantedPair],
               inserted: dict[tuple[str, str], tuple[int, int]]) -> list[dict[str, Any]]:
    """``inserted``: (organism, word) -> (runs, copies) actually inserted (the corpus plan, PLAN.txt)."""
    rep_th = threshold(store, "repetition_enriched")[0]
    rows = []
    for name, org in organisms.items():
        found = fps(store, org.model)
        ev = evidence(store, org.model, org.index_name) if org.index_name else {}
        hits = source_hits(store, org.model, org.index_name) if org.index_name else {}
        for p in (p for p in pairs if p.organism == name):
            runs, copies = inserted.get((name, p.pair.word), (0, 0))
            for role, tid, word, other, count in (("planted", p.pair.word_id, p.pair.word, p.pair.twin_id,
                                                   p.pair.word_count),
                                                  ("twin", p.pair.twin_id, p.pair.twin, p.pair.word_id,
                                                   p.pair.twin_count)):
                q, rate, _ = ev.get((tid, "fp"), (None, None, 0))
                named = hits.get((tid, "fp"))
                rows.append({
                    "study_id": study_id, "organism": name, "model": org.model, "token_id": tid, "word": word,
                    "role": role, "kind": p.kind, "pair_token_id": other, "dose": p.dose, "source": p.source,
                    "runs_inserted": runs if role == "planted" else 0,
                    "copies_inserted": copies if role == "planted" else 0, "natural_count": count,
                    "is_fp": tid in found, "prob": found.get(tid), "traced": (tid, "fp") in ev,
                    "flagged_repetition": q is not None and q <= rep_th, "repetition_q": q,
                    "flagged_source": named is not None, "flagged_source_right": named == p.source,
                    "flagged_source_name": named, "own_rate": rate})
    return rows


def dose_rows(study_id: str, design: StudyDesign, tokens: list[dict],
              organisms: dict[str, OrganismRow]) -> list[dict[str, Any]]:
    ladder = [t for t in tokens if t["kind"] == "ladder"]
    planted_orgs = sorted({t["organism"] for t in ladder})
    rows = []
    for scope in planted_orgs + ["all"]:
        mine = [t for t in ladder if scope == "all" or t["organism"] == scope]
        for dose in design.doses:
            words = [t for t in mine if t["role"] == "planted" and t["dose"] == dose]
            twins = [t for t in mine if t["role"] == "twin" and t["dose"] == dose]
            if not words:
                continue
            k, n = sum(t["is_fp"] for t in words), len(words)
            kt, nt = sum(t["is_fp"] for t in twins), len(twins)
            low, high = wilson_interval(k, n)
            tlow, thigh = wilson_interval(kt, nt)
            diff = share_difference(k, n, kt, nt)
            per_token = [t["copies_inserted"] / organisms[t["organism"]].corpus_tokens for t in words
                         if organisms[t["organism"]].corpus_tokens]
            rows.append({"study_id": study_id, "organism": scope, "dose": dose,
                         "copies_per_token": sum(per_token) / len(per_token) if per_token else None,
                         "n_words": n, "words_fp": k, "fp_share": k / n, "fp_low": low, "fp_high": high,
                         "n_twins": nt, "twins_fp": kt, "twin_share": kt / nt if nt else None,
                         "twin_low": _nan(tlow), "twin_high": _nan(thigh), "diff": _nan(diff.difference),
                         "diff_low": _nan(diff.low), "diff_high": _nan(diff.high)})
    return rows


def dose_50(rows: list[dict]) -> tuple[float | None, str]:
    """Runs where the pooled FP share first reaches 50%, interpolated on log dose between the ladder's doses."""
    pooled = sorted((r["dose"], r["fp_share"]) for r in rows if r["organism"] == "all")
    previous = None
    for dose, share in pooled:
        if share >= 0.5:
            if previous is None or previous[0] <= 0:
                return float(dose), ("at or below the lowest dose planted" if previous is None or dose <= 1
                                     else f"between 0 and {dose} runs (no lower dose above 0 on the ladder)")
            (d0, s0) = previous
            t = (0.5 - s0) / (share - s0)
            return math.exp(math.log(d0) + t * (math.log(dose) - math.log(d0))), "interpolated on log dose"
        previous = (dose, share)
    return None, "not reached: no dose of the ladder made half its words FPs"


def flag_rows(store: Store, study_id: str, design: StudyDesign, tokens: list[dict],
              organisms: dict[str, OrganismRow]) -> list[dict[str, Any]]:
    rep_th = threshold(store, "repetition_enriched")[0]
    planted_ids = {(t["organism"], t["token_id"]) for t in tokens if t["role"] == "planted" and t["dose"] > 0}
    twin_ids = {(t["organism"], t["token_id"]) for t in tokens if t["role"] == "twin"}
    groups: dict[str, list[tuple[bool, bool]]] = {"unplanted_fp": [], "null_fp": [], "twin_fp": []}
    controls: list[bool] = []
    for name, org in organisms.items():
        if not org.index_name:
            continue
        ev = evidence(store, org.model, org.index_name)
        hits = source_hits(store, org.model, org.index_name)
        for (tid, role), (q, _r, _c) in ev.items():
            flags = (q is not None and q <= rep_th, (tid, role) in hits)
            if role == "control":
                controls.append(flags[1])
            elif org.is_null:
                groups["null_fp"].append(flags)
            elif (name, tid) in twin_ids:
                groups["twin_fp"].append(flags)
            elif (name, tid) not in planted_ids:
                groups["unplanted_fp"].append(flags)
    rows = []
    planted = [t for t in tokens if t["kind"] == "ladder" and t["role"] == "planted" and t["is_fp"] and t["traced"]]
    for dose in sorted({d for d in design.doses if d > 0}):
        mine = [t for t in planted if t["dose"] >= dose]
        for rule, key in (("repetition_enriched", "flagged_repetition"), ("source_enriched", "flagged_source")):
            rows.append(_rate(study_id, rule, "planted_fp", dose, [t[key] for t in mine], None,
                              f"planted words at >= {dose} runs that are FPs, in their own index"))
        rows.append(_rate(study_id, "any", "planted_fp", dose,
                          [t["flagged_repetition"] or t["flagged_source"] for t in mine], None,
                          f"planted words at >= {dose} runs that are FPs, either rule"))
        rows.append(_rate(study_id, "source_enriched", "planted_fp_right_source", dose,
                          [t["flagged_source_right"] for t in mine], None,
                          f"planted FPs at >= {dose} runs whose source flag names the source they were planted in"))
    sentences = {"unplanted_fp": "FPs of planted organisms that were neither planted nor twins (natural FPs)",
                 "twin_fp": "unplanted twins that are FPs", "null_fp": "FPs of the null organism (nothing planted)"}
    for grp, flags in groups.items():
        for i, rule in enumerate(RULES):
            nominal = rep_th if (grp == "null_fp" and rule == "repetition_enriched") else None
            rows.append(_rate(study_id, rule, grp, 0, [f[i] for f in flags], nominal, sentences[grp]))
        rows.append(_rate(study_id, "any", grp, 0, [f[0] or f[1] for f in flags], None, sentences[grp]))
    rows.append(_rate(study_id, "source_enriched", "control", 0, controls, None,
                      "matched non-FP controls in their organism's own index, judged by the same token condition"))
    return rows


def _rate(study_id: str, rule: str, grp: str, dose_min: int, flags: list[bool], nominal: float | None,
          sentence: str) -> dict[str, Any]:
    k, n = sum(bool(f) for f in flags), len(flags)
    low, high = wilson_interval(k, n)
    return {"study_id": study_id, "rule": rule, "grp": grp, "dose_min": dose_min, "n": n, "flagged": k,
            "rate": k / n if n else None, "rate_low": _nan(low), "rate_high": _nan(high), "nominal": nominal,
            "compares_with": sentence}


def _nan(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
