"""A small results database for the report tests, full of hostile text (no tests here: a shared builder).

Token texts, model names and document snippets carry markup, quotes, '&', NUL, control characters, an RTL
override and the U+FFFD left by invalid UTF-8. A script that runs sets data-pwned on <html>.
With evidence=True it also holds FP-vs-control evidence (migration 007) under a hostile index and source name.
"""

from __future__ import annotations

from pathlib import Path

from fpprov.db.store import open_store

PWN = "document.documentElement.setAttribute('data-pwned','{}')"
HOSTILE_TEXTS = [
    f"<script>{PWN.format('script')}</script>",
    f'<img src=x onerror="{PWN.format("img")}">',
    f"</script><script>{PWN.format('breakout')}</script>",
    "\" onmouseover=\"alert(1)\" 'q'",
    "Tom & Jerry &amp; co",
    "nul\x00byte",
    "esc\x1b[31mred\x07bell",
    "\u202eevil\u202c rtl",
    b"bad\xc3(utf8".decode("utf-8", errors="replace"),
]
HOSTILE_MODEL = "evil/<b>model</b>\"'&"
SNIPPET = ("before <script>" + PWN.format("snippet") + "</script> \x00 \u202e BLAHBLAHBLAH after & more")

HOSTILE_INDEX = "pile</svg><script>" + PWN.format("index") + "</script>"
HOSTILE_SOURCE = "</svg><script>" + PWN.format("source") + "</script>"
DCLM = "v4_dclm-baseline_llama"
# (model, backend, index) -> fp_enrichment numbers; gemma3-270m ranks DCLM first (a meaningful difference), olmo2-1b
# has no controls in DCLM and one FP against one control in the hostile index.
ENRICHMENT = {
    ("gemma3-270m", "api", DCLM): dict(n_fp=40, n_control=80, auc=0.7125, auc_low=0.6401, auc_high=0.7807,
                                       p_value=3.2e-5, median_fp=0.0225, median_control=0.0075, median_ratio=3.0,
                                       ratio_low=1.85, ratio_high=4.6),
    ("gemma3-270m", "api", HOSTILE_INDEX): dict(n_fp=40, n_control=80, auc=0.5512, auc_low=0.4523, auc_high=0.6488,
                                                p_value=0.21, median_fp=0.01, median_control=0.009, median_ratio=1.11,
                                                ratio_low=0.7, ratio_high=1.9),
    ("olmo2-1b", "api", DCLM): dict(n_fp=0, n_control=0, reason="no controls"),
    # one FP against one control, no CI: a statistic that says nothing (shown greyed, "too few to say")
    ("olmo2-1b", "api", HOSTILE_INDEX): dict(n_fp=1, n_control=1, auc=1.0, auc_low=None, auc_high=None,
                                             p_value=0.5, median_fp=0.01, median_control=0.0, median_ratio=None,
                                             ratio_low=None, ratio_high=None),
}
GEMMA_FPS = [10 + i for i in range(len(HOSTILE_TEXTS))] + [100, 101, 102, 103, 104]
# each gemma FP's matched control in the evidence database: the control of the FP of rank i is 2000 + 2 * i
CONTROL_OF = {token_id: 2000 + 2 * rank for rank, token_id in enumerate(GEMMA_FPS)}

SCAN = dict(dtype="float32", device="cpu", batch_size=256, tolerance=1e-4, method="length1-pruned", complete=True)


def _fp(scan_id, model, token_id, text, prob, raw=None, category="normal"):
    return {"scan_id": scan_id, "model": model, "token_id": token_id, "raw_token": raw if raw is not None else text,
            "text": text, "norm_text": text, "category": category, "prob": prob, "logit": 20.0 * prob,
            "margin": 0.5, "verified_float64": True}


def _add_evidence(store) -> None:
    store.insert_rows("evidence_runs", [
        {"model": model, "backend": backend, "index_name": index, "n": 10, "measure": "count(t x n) / count(t)",
         "controls_k": 2, "bin_width": 0.5, "seed": 0, "fp_total": 14 if model == "gemma3-270m" else 3,
         "fp_sampled": 14 if model == "gemma3-270m" else 3, "sample_rule": "all", "baseline_positions": 1000}
        for model, backend, index in ENRICHMENT])
    store.insert_rows("fp_enrichment", [
        {"model": model, "backend": backend, "index_name": index, "n": 10, "reason": None, **numbers}
        for (model, backend, index), numbers in ENRICHMENT.items()])   # every key in every row: Arrow reads the first
    store.insert_rows("evidence_exclusions", [
        {"model": "gemma3-270m", "backend": "api", "index_name": DCLM, "token_id": 102, "role": "fp",
         "reason": "not_queryable"},
        {"model": "gemma3-270m", "backend": "api", "index_name": DCLM, "token_id": 2001, "role": "control",
         "reason": "count_failed"},
        {"model": "olmo2-1b", "backend": "api", "index_name": DCLM, "token_id": 5000, "role": "fp",
         "reason": "no_control_in_bin"}])
    rows = []
    for index, scale in ((DCLM, 1.0), (HOSTILE_INDEX, 0.4)):
        for rank, token_id in enumerate(GEMMA_FPS):
            rate = 0.0 if rank == 0 else 0.002 * (rank + 1) * scale     # one FP never repeats
            q = 1.0 if rank == 0 else 0.001 * (rank + 1) / scale          # the DCLM q is always the lower
            rows.append({"model": "gemma3-270m", "backend": "api", "index_name": index, "token_id": token_id,
                         "role": "fp", "unigram_count": 1000, "repeat_count": round(1000 * rate), "rate": rate,
                         "bin": 6, "n_bin_controls": 28, "percentile": min(99.0, 50 + 3 * rank * scale),
                         "percentile_low": 40.0 * scale, "percentile_high": 95.0, "p_value": q / 2,
                         "q_value": q})
        for j in range(28):
            rate = 0.0 if j < 6 else 0.0005 * j
            rows.append({"model": "gemma3-270m", "backend": "api", "index_name": index, "token_id": 2000 + j,
                         "role": "control", "unigram_count": 1000, "repeat_count": round(1000 * rate), "rate": rate,
                         "bin": 6})
    store.insert_rows("token_evidence", rows)
    sources = []
    for index in (DCLM, HOSTILE_INDEX):
        for role, shares in (("fp", {HOSTILE_SOURCE: 0.5, "<b>pes2o</b>": 0.3, "web & co": 0.2}),
                             ("control", {HOSTILE_SOURCE: 0.1, "<b>pes2o</b>": 0.3, "web & co": 0.6})):
            for source, share in shares.items():
                base = {HOSTILE_SOURCE: 0.05, "<b>pes2o</b>": 0.25, "web & co": 0.7}[source]
                sources.append({"model": "gemma3-270m", "backend": "api", "index_name": index, "scope": "pooled",
                                "role": role, "source": source, "docs": round(40 * share), "sampled": 40,
                                "reason": None, "share": share, "share_low": share * 0.7, "share_high": min(1, share * 1.3),
                                "baseline_share": base, "enrichment": share / base,
                                "enrichment_low": 0.0 if share < 0.15 else share / base * 0.6,
                                "enrichment_high": share / base * 1.6})
        sources.append({"model": "gemma3-270m", "backend": "api", "index_name": index, "scope": "pooled",
                        "role": "fp", "source": "(unknown)", "docs": 0, "sampled": 40, "share": 0.0,
                        "reason": "source not seen among baseline positions"})
    store.insert_rows("source_enrichment", sources)
    # Each gemma FP's matched control (one draw) and the controls' texts; DCLM's shares with any run in fp_effects
    # (the hostile index has none: the report computes them from token_evidence).
    store.insert_rows("vocabulary", [{"model": "gemma3-270m", "token_id": 2000 + j, "raw_token": f"ctl{j}",
                                      "text": f" ctl{j}", "norm_text": f" ctl{j}", "category": "normal"}
                                     for j in range(28)])
    store.insert_rows("control_matches", [
        {"model": "gemma3-270m", "backend": "api", "index_name": index, "fp_token_id": token_id, "draw": 0,
         "control_token_id": CONTROL_OF[token_id], "bin": 6, "category": "normal", "fp_count": 1000,
         "control_count": 1000} for index in (DCLM, HOSTILE_INDEX) for token_id in GEMMA_FPS])
    fp_any = sum(1 for rank in range(len(GEMMA_FPS)) if rank > 0)
    control_any = sum(1 for j in range(28) if j >= 6)
    store.insert_rows("fp_effects", [{
        "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "n_fp": len(GEMMA_FPS), "fp_any": fp_any,
        "n_control": 28, "control_any": control_any, "any_diff": fp_any / len(GEMMA_FPS) - control_any / 28,
        "any_diff_low": 0.01, "any_diff_high": 0.3, "effect": "more"}])
    # FP 100's documents mostly from pes2o, against the controls' documents (FP-vs-control contrast of the source)
    store.insert_rows("source_enrichment", [{
        "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "scope": "token", "token_id": 100,
        "role": "fp", "source": "<b>pes2o</b>", "docs": 5, "sampled": 6, "share": 5 / 6, "share_low": 0.44,
        "share_high": 0.97, "baseline_share": 0.1, "enrichment": 8.3, "enrichment_low": 4.2,
        "enrichment_high": 16.0}])
    store.insert_rows("source_contrast", [{
        "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "source": "<b>pes2o</b>", "fp_docs": 12,
        "fp_sampled": 40, "control_docs": 2, "control_sampled": 40, "odds_ratio": 6.9, "or_low": 1.4,
        "or_high": 66.0, "p_value": 0.003, "q_value": 0.009, "baseline_share": 0.25}])
    # a control traced like the FPs: its counts and a sampled document
    for n, count in ((1, 700), (10, 2)):
        store.insert_rows("provenance", [{
            "model": "gemma3-270m", "token_id": 2010, "backend": "api", "index_name": DCLM, "n": n,
            "variant": "emitted", "in_evidence": True, "loose": False, "token_text": " ctl10", "category": "normal",
            "queryable": True,
            "query": " ctl10" * n, "index_is_proxy": True, "role": "control"}])
        store.insert_rows("ngram_counts", [{"backend": "api", "index_name": DCLM, "query": " ctl10" * n,
                                            "status": "ok", "count": count}])
    store.insert_rows("documents", [{
        "backend": "api", "index_name": DCLM, "query": " ctl10" * 10, "seed": 0, "sample_no": 0, "shard": 0,
        "rank": 0, "status": "ok", "snippet": "a" + " ctl10" * 10 + " b", "source": "web & co", "metadata": "{}"}])


# Per-token q-values of the plain report database (gemma3-270m in DCLM): six FPs are repetition-enriched at
# q <= 0.05, BLAH the most (and its forum source too), then " Justine".
FLAG_Q = {100: 1e-5, 101: 1e-4, 104: 1e-3, 10: 0.01, 11: 0.02, 12: 0.04, 13: 0.3, 14: 0.5}


def _add_flag_evidence(store) -> None:
    store.insert_rows("evidence_runs", [{
        "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "n": 10, "measure": "rate", "controls_k": 1,
        "bin_width": 0.5, "seed": 0, "fp_total": 14, "fp_sampled": 14, "sample_rule": "all",
        "baseline_positions": 1000}])
    store.insert_rows("token_evidence", [{
        "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "token_id": token_id, "role": "fp",
        "unigram_count": 2_000_000, "repeat_count": 45_000, "rate": 0.66, "bin": 12, "n_bin_controls": 60,
        "percentile": 99.0, "percentile_low": 91.0, "percentile_high": 99.8, "p_value": q / 2, "q_value": q}
        for token_id, q in FLAG_Q.items()])
    store.insert_rows("fp_enrichment", [{
        "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "n": 10, "n_fp": len(FLAG_Q), "n_control": 60,
        "auc": 0.81, "auc_low": 0.7, "auc_high": 0.9, "p_value": 1e-4, "median_fp": 0.66, "median_control": 0.2,
        "median_ratio": 3.3, "ratio_low": 2.0, "ratio_high": 5.1, "reason": None}])
    store.insert_rows("source_enrichment", [{
        "model": "gemma3-270m", "backend": "api", "index_name": DCLM, "scope": "token", "token_id": 100,
        "role": "fp", "source": "<b>pes2o</b>", "docs": 5, "sampled": 6, "share": 5 / 6, "share_low": 0.44,
        "share_high": 0.97, "baseline_share": 0.1, "enrichment": 8.3, "enrichment_low": 4.2,
        "enrichment_high": 16.0}])


def _add_undertrained(store) -> None:
    """gemma3-270m's first 4,096 ids with magikarp indicators: BLAH (100) and " Justine" (101) under-trained."""
    store.insert_rows("undertrained_runs", [{
        "model": "gemma3-270m", "indicator": "cosine_distance_no_pc1", "reference_rule": "unused_names",
        "reference_count": 99, "percentile": 2.0, "threshold": 0.1, "n_tokens": 4096, "n_undertrained": 82,
        "tied_head": True}])
    store.insert_rows("undertrained_tokens", [{
        "model": "gemma3-270m", "token_id": i, "is_reference": False, "is_special": False, "cosine_distance": 0.5,
        "cosine_distance_no_pc1": value, "input_norm": 1.0, "indicator_value": value, "percentile": 100 * i / 4096,
        "undertrained": value <= 0.1} for i, value in ((i, 0.05 if i in (100, 101) else 0.6) for i in range(4096))])


def build_report_db(path: Path, *, evidence: bool = False, flags: bool = True) -> Path:
    """evidence: the full evidence of two indexes (hostile names); else, with flags, one index's q-values."""
    with open_store(path) as store:
        if evidence:
            _add_evidence(store)
        elif flags:
            _add_flag_evidence(store)
        _add_undertrained(store)
        store.insert_rows("models", [
            {"name": "gemma3-270m", "source_kind": "gguf-package", "family": "gemma3", "variant": "base",
             "quantization": "Q4_K_M GGUF dequantized to float32", "vocab_size": 262144, "hub_id": "google/gemma-3-270m"},
            {"name": "gemma3-270m-inst", "source_kind": "hub", "family": "gemma3", "variant": "inst", "vocab_size": 262144},
            {"name": "olmo2-1b", "source_kind": "hub", "family": "olmo2", "variant": "base", "vocab_size": 100352},
            {"name": HOSTILE_MODEL, "source_kind": "directory", "family": "hostile<i>", "variant": None},
        ])
        store.insert_rows("scans", [
            {**SCAN, "scan_id": 1, "model": "gemma3-270m", "bos": False, "id_start": 0, "id_stop": 4096,
             "tokens_scanned": 4096, "fp_count": 14},
            {**SCAN, "scan_id": 2, "model": "gemma3-270m-inst", "bos": False, "id_start": 0, "id_stop": 4096,
             "tokens_scanned": 4096, "fp_count": 3},
            {**SCAN, "scan_id": 3, "model": "olmo2-1b", "bos": False, "id_start": 0, "id_stop": 100352,
             "tokens_scanned": 100352, "fp_count": 3},
            {**SCAN, "scan_id": 4, "model": HOSTILE_MODEL, "bos": True, "id_start": 0, "id_stop": 300,
             "tokens_scanned": 300, "fp_count": 2, "complete": False},
        ])
        gemma = [_fp(1, "gemma3-270m", 10 + i, text, 0.3 + 0.05 * i) for i, text in enumerate(HOSTILE_TEXTS)]
        gemma += [_fp(1, "gemma3-270m", 100, "BLAH", 0.999, raw="\u2581BLAH"), _fp(1, "gemma3-270m", 101, " Justine", 0.9995),
                  _fp(1, "gemma3-270m", 102, "\ufffd", 0.2, raw="<0xC3>", category="byte_fragment"),
                  _fp(1, "gemma3-270m", 103, "<eos>", 0.05, category="special"),
                  _fp(1, "gemma3-270m", 104, "Á", 0.7)]
        store.insert_rows("token_fps", gemma + [
            _fp(2, "gemma3-270m-inst", 100, "BLAH", 0.95, raw="\u2581BLAH"), _fp(2, "gemma3-270m-inst", 10, HOSTILE_TEXTS[0], 0.4),
            _fp(2, "gemma3-270m-inst", 200, "gained", 0.6),
            _fp(3, "olmo2-1b", 5000, "BLAH", 0.8, raw="ĠBLAH"), _fp(3, "olmo2-1b", 5001, "Á", 0.99),
            _fp(3, "olmo2-1b", 5002, HOSTILE_TEXTS[1], 0.5),
            _fp(4, HOSTILE_MODEL, 7, HOSTILE_TEXTS[2], 0.9), _fp(4, HOSTILE_MODEL, 8, "BLAH", 0.4),
        ])
        store.insert_rows("vector_runs", [
            {"model": "gemma3-270m", "method": method, "seed": seed, "settings": "tol=1e-6", "embedding": "raw",
             "dtype": "float32", "device": "cpu", "init_std": 0.02, "tolerance": 1e-6, "max_steps": 200,
             "batch_size": 2, "converged": seed < 2, "stop_reason": "converged" if seed < 2 else "not_converging",
             "steps": 40 + seed, "residual": 1e-7, "best_residual": 1e-7, "vector": [0.1, 0.2], "vector_norm": 0.22,
             "vector_id": seed + 1 if seed < 2 else None, "seconds": 1.5}
            for method in ("iterate", "gradient") for seed in range(3)])
        store.insert_rows("vector_fps", [
            {"vector_id": vid, "model": "gemma3-270m", "embedding": "raw", "dtype": "float32", "dim": 2,
             "vector": [0.1, 0.2], "vector_norm": 0.22, "residual": 1e-7, "dedup_distance": 1e-4,
             "methods": ["gradient", "iterate"], "seeds": [vid - 1], "run_ids": [vid], "n_runs": 1,
             "rollout_feed": "output", "rollout_steps": 5, "rollout_dist_by_l": dists,
             "rollout_dist_max": max(dists), "stable_threshold": 1e-3, "stable": max(dists) < 1e-3, "top_k": 3,
             "entropy": 0.4, "top_token_id": 10, "top_token_text": HOSTILE_TEXTS[0], "top_weight": 0.97,
             "top_token_is_fp": True}
            for vid, dists in ((1, [1e-7, 2e-7, 2e-7, 3e-7, 3e-7]), (2, [2e-6, 1e-4, 1e-2, 0.5, 1.3]))])
        store.insert_rows("vector_fp_tokens", [
            {"vector_id": vid, "rank": rank, "token_id": tid, "raw_token": text, "text": text, "weight": w,
             "is_token_fp": rank == 1}
            for vid in (1, 2)
            for rank, (tid, text, w) in enumerate([(10, HOSTILE_TEXTS[0], 0.97), (16, HOSTILE_TEXTS[6], 0.02),
                                                   (17, HOSTILE_TEXTS[7], 0.01)], start=1)])
        prov, counts, docs = [], [], []
        for token_id, text, by_n in ((100, "BLAH", {1: 2_000_000, 10: 45_000}), (10, HOSTILE_TEXTS[0], {1: 900, 10: 3})):
            for n, count in by_n.items():
                query = text * n
                prov.append({"model": "gemma3-270m", "token_id": token_id, "backend": "api",
                             "index_name": "v4_dclm-baseline_llama", "n": n, "variant": "emitted",
                             "in_evidence": True, "loose": False, "token_text": text,
                             "category": "normal", "queryable": True, "query": query, "index_is_proxy": True})
                counts.append({"backend": "api", "index_name": "v4_dclm-baseline_llama", "query": query,
                               "status": "ok", "count": count})
        prov.append({"model": "gemma3-270m", "token_id": 102, "backend": "api", "index_name": "v4_dclm-baseline_llama",
                     "n": 10, "variant": "emitted", "in_evidence": False, "loose": False, "token_text": "\ufffd",
                     "category": "byte_fragment",
                     "queryable": False, "reason": "byte_fragment: no text form", "index_is_proxy": True})
        for i, source in enumerate(["<b>pes2o</b>"] * 5 + ["web & co"]):
            docs.append({"backend": "api", "index_name": "v4_dclm-baseline_llama", "query": "BLAH" * 10, "seed": 0,
                         "sample_no": i, "shard": 0, "rank": i, "status": "ok", "snippet": SNIPPET.replace("BLAHBLAHBLAH", "BLAH" * 10),
                         "source": source, "metadata": "{}"})
        store.insert_rows("provenance", prov)
        store.insert_rows("ngram_counts", counts)
        store.insert_rows("documents", docs)
    return path


def table_rows(html: str, table_id: str) -> list[list]:
    """Every row of one data table of a page (its JSON block, all pages of it), found by the table's id."""
    import json
    import re

    start = html.find(f'<div class="dt" id="table-{table_id}">')
    assert start >= 0, f"no table {table_id}"
    end = html.find('<div class="dt" ', start + 1)
    found = re.search(r'<script type="application/json">(.*?)</script>', html[start:end if end > 0 else None], re.S)
    return json.loads(found.group(1))["rows"] if found else []
