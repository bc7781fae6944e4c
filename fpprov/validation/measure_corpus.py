"""Corpus-level measurements of a study: attribution (each organism's indexes ranked by fpprov's FP-vs-control
AUC, as corpus_attribution ranks them), the natural FPs (neither planted nor twins) in own and other corpora,
the FPs organisms share, and the headline figures (validation_summary).
"""

from __future__ import annotations

from typing import Any

from ..db.store import Store
from ..evidence.effect import share_difference
from ..evidence.intervals import wilson_interval
from .design import StudyDesign
from .measure import OrganismRow, _nan


def attribution_rows(store: Store, study_id: str, design: StudyDesign,
                     organisms: dict[str, OrganismRow]) -> list[dict[str, Any]]:
    owner = {o.index_name: name for name, o in organisms.items() if o.index_name}
    rows = []
    for name, org in organisms.items():
        found = store.query(
            """SELECT e.index_name, e.auc, e.auc_low, e.auc_high, e.n_fp, e.n_control,
                      f.any_diff, f.any_diff_low, f.any_diff_high
               FROM fp_enrichment e
               LEFT JOIN fp_effects f USING (model, backend, index_name)
               WHERE e.model = ? AND e.backend = 'local'""", [org.model])
        found = [r for r in found if r[0] in owner]
        # The order of corpus_attribution: AUC, then the CI's lower end, then the name.
        found.sort(key=lambda r: (-(r[1] if r[1] is not None else -1), -(r[2] if r[2] is not None else -1), r[0]))
        for rank, r in enumerate(found, start=1):
            nxt = found[rank] if rank < len(found) else None
            tied = (nxt is not None and r[2] is not None and nxt[3] is not None and r[2] <= nxt[3])
            rows.append({"study_id": study_id, "organism": name, "index_name": r[0], "index_organism": owner[r[0]],
                         "relation": design.relation(name, owner[r[0]]), "is_own": owner[r[0]] == name,
                         "rank": rank, "statistic": "auc", "auc": r[1], "auc_low": r[2], "auc_high": r[3],
                         "any_diff": r[6], "any_diff_low": r[7], "any_diff_high": r[8], "n_fp": r[4],
                         "n_control": r[5], "tied_with_next": bool(tied)})
    return rows


NATURAL_N = 2   # a small model's p(t | t) mirrors its corpus's bigram (t, t); runs of 10 are rare unplanted


def natural_rows(store: Store, study_id: str, design: StudyDesign, organisms: dict[str, OrganismRow],
                 tokens: list[dict]) -> list[dict[str, Any]]:
    """Per organism and index: the natural FPs compared there (token_evidence) and their matched controls, with
    count(t x 2) from provenance_counts (the spelling in evidence; the study's ladder includes n = 2)."""
    owner = {o.index_name: name for name, o in organisms.items() if o.index_name}
    rows = []
    for name, org in organisms.items():
        known = [t["token_id"] for t in tokens if t["organism"] == name and (t["role"] == "twin" or t["dose"] > 0)]
        for index_name, other in owner.items():
            stats = {}
            for role in ("fp", "control"):
                found = store.query(
                    """WITH compared AS (
                           SELECT e.token_id, e.unigram_count FROM token_evidence e
                           WHERE e.model = ? AND e.index_name = ? AND e.role = ?
                             AND CASE WHEN e.role = 'fp' THEN NOT list_contains(?, e.token_id)
                                      ELSE e.token_id IN (SELECT m.control_token_id FROM control_matches m
                                                          WHERE m.model = e.model AND m.index_name = e.index_name
                                                            AND NOT list_contains(?, m.fp_token_id)) END
                       ), counted AS (
                           SELECT token_id, max(count) AS count FROM provenance_counts
                           WHERE model = ? AND index_name = ? AND role = ? AND n = ? AND status = 'ok' AND in_evidence
                           GROUP BY token_id
                       )
                       SELECT count(*), count(*) FILTER (WHERE coalesce(c.count, 0) > 0),
                              median(coalesce(c.count, 0) / greatest(k.unigram_count, 1))
                       FROM compared k LEFT JOIN counted c USING (token_id)""",
                    [org.model, index_name, role, known, known, org.model, index_name, role, NATURAL_N])[0]
                stats[role] = (int(found[0]), int(found[1]), found[2])
            (n_fp, fp_any, fp_med), (n_ctl, ctl_any, ctl_med) = stats["fp"], stats["control"]
            fl, fh = wilson_interval(fp_any, n_fp)
            cl, ch = wilson_interval(ctl_any, n_ctl)
            d = share_difference(fp_any, n_fp, ctl_any, n_ctl)
            rows.append({"study_id": study_id, "organism": name, "index_name": index_name,
                         "relation": design.relation(name, other), "n": NATURAL_N, "n_fp": n_fp, "fp_any": fp_any,
                         "fp_share": fp_any / n_fp if n_fp else None, "fp_low": _nan(fl), "fp_high": _nan(fh),
                         "n_control": n_ctl, "control_any": ctl_any,
                         "control_share": ctl_any / n_ctl if n_ctl else None, "control_low": _nan(cl),
                         "control_high": _nan(ch), "diff": _nan(d.difference), "diff_low": _nan(d.low),
                         "diff_high": _nan(d.high), "median_fp_rate": fp_med, "median_control_rate": ctl_med})
    return rows


def shared_rows(store: Store, study_id: str, design: StudyDesign, organisms: dict[str, OrganismRow],
                tokens: list[dict]) -> list[dict[str, Any]]:
    planted = {}
    for t in tokens:
        if t["role"] == "planted" and t["dose"] > 0:
            planted.setdefault(t["organism"], set()).add(t["word"])
    texts = {name: {r[0] for r in store.query(
        "SELECT DISTINCT norm_text FROM primary_fps WHERE model = ? AND norm_text IS NOT NULL AND norm_text <> '' "
        "AND NOT contains(norm_text, chr(65533))", [org.model])} for name, org in organisms.items()}
    names = sorted(organisms)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = texts[a] & texts[b]
            in_both = planted.get(a, set()) & planted.get(b, set())
            in_either = planted.get(a, set()) | planted.get(b, set())
            union = len(texts[a] | texts[b])
            rows.append({"study_id": study_id, "organism_a": a, "organism_b": b,
                         "shared_sources": sorted(set(design.mixtures[design.plan(a).mixture])
                                                  & set(design.mixtures[design.plan(b).mixture])),
                         "fps_a": len(texts[a]), "fps_b": len(texts[b]), "shared": len(both),
                         "jaccard": len(both) / union if union else None, "shared_planted": len(both & in_both),
                         "shared_planted_expected": len(in_both), "shared_natural": len(both - in_either)})
    return rows


def summary_rows(study_id: str, design: StudyDesign, doses: list[dict], dose50: tuple[float | None, str],
                 flags: list[dict], attribution: list[dict], natural: list[dict],
                 tokens: list[dict]) -> list[dict[str, Any]]:
    rows = [_row(study_id, "dose_50", None, sum(r["n_words"] for r in doses if r["organism"] == "all"),
                 dose50[0], None, None, None, None, dose50[1])]
    firsts = [r for r in attribution if r["rank"] == 1]
    n_idx = len({r["index_name"] for r in attribution})
    chance = 1 / n_idx if n_idx else None
    k = sum(r["is_own"] for r in firsts)
    ties = sum(r["tied_with_next"] for r in firsts)
    rows.append(_share(study_id, "attribution_top1", k, len(firsts), chance, f"chance: 1 of {n_idx} indexes",
                       f"{ties} of {len(firsts)} first places tied with the runner-up (overlapping AUC CIs)"))
    resolved = sum(r["is_own"] and not r["tied_with_next"] for r in firsts)
    rows.append(_share(study_id, "attribution_top1_resolved", resolved, len(firsts), chance,
                       f"chance: 1 of {n_idx} indexes", "own index first and its AUC CI clear of the runner-up's"))
    null = [r for r in flags if r["grp"] == "null_fp" and r["rule"] == "any"]
    if null:
        rep = next(r for r in flags if r["grp"] == "null_fp" and r["rule"] == "repetition_enriched")
        rows.append(_share(study_id, "null_flag_rate", null[0]["flagged"], null[0]["n"], rep["nominal"],
                           "nominal FDR of repetition_enriched",
                           "any rule; the FDR bounds the share of false flags among flags, not among FPs"))
    for measure, pick in (("natural_own_vs_control", None), ("natural_own_vs_other_mixture", "other")):
        own = [r for r in natural if r["relation"] == "own"]
        if pick is None:
            k1, n1 = sum(r["fp_any"] for r in own), sum(r["n_fp"] for r in own)
            k2, n2 = sum(r["control_any"] for r in own), sum(r["n_control"] for r in own)
            label = "0: natural FPs repeat as often as their matched controls in the organism's own corpus"
        else:
            other = [r for r in natural if r["relation"] in ("shares_sources", "unseen")]
            if not other:
                continue
            with_other = {r["organism"] for r in other}
            own = [r for r in own if r["organism"] in with_other]
            k1, n1 = sum(r["fp_any"] for r in own), sum(r["n_fp"] for r in own)
            k2, n2 = sum(r["fp_any"] for r in other), sum(r["n_fp"] for r in other)
            label = "0: natural FPs repeat as often in corpora of the other mixture"
        d = share_difference(k1, n1, k2, n2)
        rows.append(_row(study_id, measure, k1, n1, _nan(d.difference), _nan(d.low), _nan(d.high), 0.0, label,
                         f"share occurring doubled (n = {NATURAL_N}): {k1}/{n1} against {k2}/{n2} (Newcombe CI; "
                         "pooled over organisms; where the same tokens are on both sides the CI is conservative)"))
    for measure, role, note in (("planted_fp_rate", "planted", "ladder words planted at dose > 0, every dose pooled"),
                                ("twin_fp_rate", "twin", "their unplanted twins, every dose pooled")):
        mine = [t for t in tokens if t["kind"] == "ladder" and t["role"] == role and t["dose"] > 0]
        rows.append(_share(study_id, measure, sum(t["is_fp"] for t in mine), len(mine), None, None, note))
    return rows


def _share(study_id: str, measure: str, k: int, n: int, reference: float | None, label: str | None,
           note: str) -> dict[str, Any]:
    low, high = wilson_interval(k, n)
    return _row(study_id, measure, k, n, k / n if n else None, _nan(low), _nan(high), reference, label, note)


def _row(study_id, measure, k, n, estimate, low, high, reference, label, note) -> dict[str, Any]:
    return {"study_id": study_id, "measure": measure, "k": k, "n": n, "estimate": estimate, "low": low,
            "high": high, "reference": reference, "reference_label": label, "note": note}
