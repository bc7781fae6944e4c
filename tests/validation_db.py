"""A small, consistent validation study written by hand into the tables of migration 015 (no training): the
report tests read it back from the rendered pages. No tests here: a shared builder.

Two organisms of one mixture: 'planted' (words planted into 'mail') and 'null'. Their models are the report
database's gemma3-270m and olmo2-1b, so the organisms table links their pages. A later, interrupted study
('full-cut') must not be the one shown.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fpprov.db.store import open_store
from fpprov.evidence.intervals import wilson_interval

STUDY = "quick-0123456789"
CUT = "full-cut"
# dose -> (planted words, FPs, twins, twin FPs), pooled ('all')
DOSES = {0: (4, 0, 4, 0), 1: (4, 1, 4, 0), 10: (4, 3, 4, 1), 100: (4, 4, 4, 0)}
# rule -> grp -> {dose_min: (flagged, n)}; planted rows are cumulative (dose >= dose_min)
FLAGS = {
    "repetition_enriched": {"planted_fp": {1: (4, 10), 10: (4, 6), 100: (3, 3)},
                            "unplanted_fp": {0: (2, 40)}, "twin_fp": {0: (0, 5)}, "null_fp": {0: (1, 30)}},
    "source_enriched": {"planted_fp": {1: (2, 10), 10: (2, 6), 100: (2, 3)},
                        "planted_fp_right_source": {1: (1, 10), 10: (1, 6), 100: (1, 3)},
                        "unplanted_fp": {0: (0, 40)}, "twin_fp": {0: (0, 5)}, "control": {0: (1, 50)},
                        "null_fp": {0: (0, 30)}},
}
NOMINAL = 0.05
DOSE_50 = 4.2
TOP1 = (1, 2, 0.5)          # k, n, chance


def _share(k: int, n: int) -> dict:
    low, high = wilson_interval(k, n)
    return {"share": k / n, "low": low, "high": high}


def add_study(db: Path, *, models: tuple[str, str] = ("gemma3-270m", "olmo2-1b")) -> Path:
    finished = dt.datetime(2026, 12, 1, 12, 0)
    with open_store(db) as store:
        store.insert_rows("validation_runs", [
            {"study_id": STUDY, "design": "quick", "settings": '{"doses": [0, 1, 10, 100], "words_per_dose": 4}',
             "fpprov_version": "0.test", "n_organisms": 2, "n_indexes": 2, "expected_seconds": 300.0,
             "seconds": 240.0, "started_at": finished - dt.timedelta(minutes=4), "finished_at": finished,
             "complete": True},
            {"study_id": CUT, "design": "full", "settings": "{}", "fpprov_version": "0.test",
             "started_at": finished + dt.timedelta(days=1), "complete": False}])
        orgs = []
        for name, model, planted in (("planted", models[0], "mail"), ("null", models[1], None)):
            orgs.append({"study_id": STUDY, "organism": name, "model": model, "mixture_name": "A",
                         "mixture": ["code", "logs", "mail"], "planted_source": planted, "is_null": planted is None,
                         "n_planted": 0 if planted is None else 12, "index_name": f"organism-{name}",
                         "index_dir": f"/idx/{name}", "corpus_dir": f"/corpus/{name}", "corpus_sha256": "0" * 64,
                         "corpus_tokens": 500_000, "model_path": f"/models/{name}", "cache_key": name,
                         "steps": 200, "tokens_seen": 204_800, "final_loss": 3.25, "train_seconds": 60.0,
                         "trained": True, "n_fps": 80})
        store.insert_rows("validation_organisms", orgs)
        dose_rows = []
        for dose, (n, k, nt, kt) in DOSES.items():
            p, t = _share(k, n), _share(kt, nt)
            dose_rows.append({"study_id": STUDY, "organism": "all", "dose": dose, "copies_per_token": dose * 2e-5,
                              "n_words": n, "words_fp": k, "fp_share": p["share"], "fp_low": p["low"],
                              "fp_high": p["high"], "n_twins": nt, "twins_fp": kt, "twin_share": t["share"],
                              "twin_low": t["low"], "twin_high": t["high"], "diff": p["share"] - t["share"],
                              "diff_low": p["share"] - t["share"] - 0.3, "diff_high": p["share"] - t["share"] + 0.2})
            # the planted organism's own rows (one organism: the same counts) must not double the pooled chart
            dose_rows.append({**dose_rows[-1], "organism": "planted"})
        store.insert_rows("validation_dose_response", dose_rows)
        flag_rows = []
        for rule, groups in FLAGS.items():
            for grp, by_dose in groups.items():
                for dose_min, (k, n) in by_dose.items():
                    s = _share(k, n)
                    flag_rows.append({"study_id": STUDY, "rule": rule, "grp": grp, "dose_min": dose_min, "n": n,
                                      "flagged": k, "rate": s["share"], "rate_low": s["low"], "rate_high": s["high"],
                                      "nominal": NOMINAL if (rule, grp) == ("repetition_enriched", "null_fp") else None,
                                      "compares_with": f"{grp} tokens"})
        store.insert_rows("validation_flag_rates", flag_rows)
        attribution = []
        for organism, first, tied in (("planted", "planted", False), ("null", "planted", True)):
            second = "null" if first == "planted" else "planted"
            for rank, ix in ((1, first), (2, second)):
                attribution.append({"study_id": STUDY, "organism": organism, "index_name": f"organism-{ix}",
                                    "index_organism": ix, "relation": "own" if ix == organism else "same_mixture",
                                    "is_own": ix == organism, "rank": rank, "statistic": "auc",
                                    "auc": 0.71 if rank == 1 else 0.6, "auc_low": 0.62 if rank == 1 else 0.5,
                                    "auc_high": 0.8 if rank == 1 else 0.7, "any_diff": 0.1, "any_diff_low": 0.02,
                                    "any_diff_high": 0.18, "n_fp": 60, "n_control": 600,
                                    "tied_with_next": tied and rank == 1})
        store.insert_rows("validation_attribution", attribution)
        natural = []
        for organism in ("planted", "null"):
            for ix, relation, fk, ck in ((organism, "own", 30, 10), ("null" if organism == "planted" else "planted",
                                                                     "same_mixture", 20, 12)):
                f, c = _share(fk, 60), _share(ck, 600)
                natural.append({"study_id": STUDY, "organism": organism, "index_name": f"organism-{ix}",
                                "relation": relation, "n": 2, "n_fp": 60, "fp_any": fk, "fp_share": f["share"],
                                "fp_low": f["low"], "fp_high": f["high"], "n_control": 600, "control_any": ck,
                                "control_share": c["share"], "control_low": c["low"], "control_high": c["high"],
                                "diff": f["share"] - c["share"], "diff_low": f["share"] - c["share"] - 0.1,
                                "diff_high": f["share"] - c["share"] + 0.1, "median_fp_rate": 0.01,
                                "median_control_rate": 0.0})
        store.insert_rows("validation_natural", natural)
        store.insert_rows("validation_shared", [{
            "study_id": STUDY, "organism_a": "null", "organism_b": "planted", "shared_sources": ["code", "logs", "mail"],
            "fps_a": 80, "fps_b": 80, "shared": 20, "jaccard": 20 / 140, "shared_planted": 0,
            "shared_planted_expected": 0, "shared_natural": 20}])
        k, n, chance = TOP1
        top = _share(k, n)
        store.insert_rows("validation_summary", [
            {"study_id": STUDY, "measure": "dose_50", "k": None, "n": 16, "estimate": DOSE_50, "low": None,
             "high": None, "reference": None, "reference_label": None, "note": "interpolated on log dose"},
            {"study_id": STUDY, "measure": "attribution_top1", "k": k, "n": n, "estimate": top["share"],
             "low": top["low"], "high": top["high"], "reference": chance, "reference_label": "chance: 1 of 2 indexes",
             "note": None},
            {"study_id": STUDY, "measure": "natural_own_vs_control", "k": None, "n": 120, "estimate": 0.4,
             "low": 0.3, "high": 0.5, "reference": 0.0, "reference_label": "no difference", "note": None},
        ])
    return db
