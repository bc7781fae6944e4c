"""Benchmark: `fpprov report` on a model with 100,000+ token FPs plus their controls must finish in <= 15 s.

Builds a synthetic database (no model needed): a gemma3-1b-like base model with --fps token FPs and its
instruct model with half as many, sharing most texts, plus a small model of another family, vector FPs,
provenance for --traced tokens with sampled documents, and some hostile texts; the big model's evidence in
two indexes: every FP with --controls matched controls (token_evidence, control_matches), exclusions, pooled
and per-token source enrichment. Then times build_reports (all pages: index, the three model pages, shared)
and reports page sizes.

    python bench/report.py [--fps 120000] [--traced 2000] [--controls 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from fpprov.report import build_reports
from fpprov.db.store import open_store

BUDGET_S = 15.0


EVIDENCE_INDEXES = ("v4_dclm-baseline_llama", "v4_pileval_llama")


def add_evidence(con, fps: int, traced: int, controls: int) -> None:
    """Evidence rows for gemma3-1b in EVIDENCE_INDEXES: control j of FP i is token fps + i * controls + j."""
    for x, index in enumerate(EVIDENCE_INDEXES):
        key = f"'gemma3-1b', 'api', '{index}'"
        con.execute(f"""INSERT INTO evidence_runs (model, backend, index_name, n, measure, controls_k, bin_width, seed,
                        fp_total, fp_sampled, sample_rule, baseline_positions)
                        VALUES ({key}, 10, 'count(t x n) / count(t)', {controls}, 0.5, 0, {fps}, {fps}, 'all', 10000)""")
        con.execute(f"""INSERT INTO fp_enrichment VALUES ({key}, 10, {fps - fps // 100}, {(fps - fps // 100) * controls},
                        {0.68 - 0.1 * x}, {0.67 - 0.1 * x}, {0.69 - 0.1 * x}, 1e-30, 0.004, 0.002, 2.0, 1.9, 2.1, NULL)""")
        con.execute(f"""INSERT INTO control_matches
                        SELECT {key}, i, j, {fps} + i * {controls} + j, i % 12, 'normal', 1000 + i % 5000, 1000 + j
                        FROM range({fps}) a(i), range({controls}) b(j) WHERE i % 100 <> 0""")
        con.execute(f"""INSERT INTO evidence_exclusions
                        SELECT {key}, i, 'fp', CASE WHEN i % 200 = 0 THEN 'zero_unigram_count' ELSE 'no_control_in_bin' END
                        FROM range({fps}) t(i) WHERE i % 100 = 0""")
        # FP rates skewed above the controls'; a tenth of the controls never repeat (the ECDF's zero edge)
        con.execute(f"""INSERT INTO token_evidence
                        SELECT {key}, i, 'fp', 1000 + i % 5000, (hash(i + {x}) % 1000), (hash(i + {x}) % 1000) / (1000.0 + i % 5000),
                               i % 12, 40, (hash(i) % 1000) / 10.0, greatest(0, (hash(i) % 1000) / 10.0 - 8),
                               least(100, (hash(i) % 1000) / 10.0 + 8), (1 + hash(i * 7 + {x}) % 1000) / 1001.0,
                               least(1, (1 + hash(i * 7 + {x}) % 1000) / 1001.0 * 3)
                        FROM range({fps}) t(i) WHERE i % 100 <> 0""")
        con.execute(f"""INSERT INTO token_evidence (model, backend, index_name, token_id, role, unigram_count, repeat_count,
                        rate, bin)
                        SELECT {key}, control_token_id, 'control', control_count,
                               CASE WHEN fp_token_id % 10 = 0 THEN 0 ELSE hash(control_token_id) % 400 END,
                               CASE WHEN fp_token_id % 10 = 0 THEN 0 ELSE hash(control_token_id) % 400 END / control_count,
                               bin
                        FROM control_matches WHERE model = 'gemma3-1b' AND index_name = '{index}'""")
        sources = "SELECT * FROM (VALUES ('pes2o'), ('cc'), ('wiki'), ('<b>arxiv</b>'), ('github')) s(source)"
        con.execute(f"""INSERT INTO source_enrichment
                        SELECT {key}, 'pooled', NULL, role, source, 100 + k * 10, 1000, (100 + k * 10) / 1000.0,
                               (90 + k * 10) / 1000.0, (110 + k * 10) / 1000.0, 0.1, (1 + k / 10.0), 0.8 + k / 10.0,
                               1.2 + k / 10.0, NULL
                        FROM (SELECT source, row_number() OVER (ORDER BY source) AS k FROM ({sources})),
                             (VALUES ('fp'), ('control')) r(role)""")
        con.execute(f"""INSERT INTO source_enrichment
                        SELECT {key}, 'token', t.token_id, 'fp', s.source, 2, 6, 0.33, 0.1, 0.7, 0.1, 3.3, 0.9, 7.0, NULL
                        FROM (SELECT token_id FROM token_fps WHERE scan_id = 1 ORDER BY prob DESC LIMIT {traced}) t,
                             ({sources}) s""")


def build_database(path: Path, fps: int, traced: int, controls: int = 2) -> None:
    with open_store(path) as store:
        con = store.con
        store.insert_rows("models", [
            {"name": "gemma3-1b", "source_kind": "hub", "family": "gemma3", "variant": "base", "vocab_size": 262144},
            {"name": "gemma3-1b-inst", "source_kind": "hub", "family": "gemma3", "variant": "inst", "vocab_size": 262144},
            {"name": "olmo2-1b", "source_kind": "hub", "family": "olmo2", "variant": "base", "vocab_size": 100352},
        ])
        common = "'float32', 'cpu', false, 0, 262144, 256, 1e-4, 'length1-pruned', true, 262144"
        con.execute(f"""INSERT INTO scans (scan_id, model, dtype, device, bos, id_start, id_stop, batch_size, tolerance,
                        method, complete, tokens_scanned) VALUES
                        (1, 'gemma3-1b', {common}), (2, 'gemma3-1b-inst', {common}), (3, 'olmo2-1b', {common})""")
        # Token i of the base model: text 'w<i>' (a few hostile ones), probability spread over (0, 1).
        text = ("CASE WHEN i % 997 = 0 THEN '<script>alert(' || i || ')</script>' "
                "WHEN i % 991 = 0 THEN 'x' || chr(0) || chr(8238) || i ELSE ' w' || i END")
        insert = """INSERT INTO token_fps (scan_id, model, token_id, raw_token, text, norm_text, category, prob, logit,
                    runner_up_id, runner_up_logit, margin, verified_float64)
                    SELECT {scan}, '{model}', i, text, text, text, CASE WHEN i % 50 = 0 THEN 'special' ELSE 'normal' END,
                           p, 20 * p, i + 1, 20 * p - 0.5, 0.5, true
                    FROM (SELECT i, {text} AS text, (hash(i + {salt}) % 1000000) / 1000000.0 AS p FROM range({n}) t(i))"""
        con.execute(insert.format(scan=1, model="gemma3-1b", text=text, salt=0, n=fps))
        con.execute(insert.format(scan=2, model="gemma3-1b-inst", text=text, salt=7, n=fps // 2))
        con.execute(insert.format(scan=3, model="olmo2-1b", text=text, salt=3, n=2000))
        con.execute("""INSERT INTO vector_fps (vector_id, model, embedding, dtype, dim, vector, vector_norm, residual,
                       dedup_distance, methods, seeds, run_ids, n_runs, rollout_feed, rollout_steps, rollout_dist_by_l,
                       rollout_dist_max, stable_threshold, stable, top_k, entropy, top_token_id, top_token_text,
                       top_weight, top_token_is_fp)
                       SELECT v, 'gemma3-1b', 'raw', 'float32', 1152, [0.1, 0.2]::FLOAT[], 0.2, 1e-7, 1e-4,
                              ['gradient', 'iterate'], [v], [v], 1, 'output', 100,
                              (SELECT list(1e-7 * pow(1 + v, l / 10) ORDER BY l) FROM range(100) r(l)),
                              1e-7 * pow(1 + v, 9.9),
                              1e-3, v < 2, 10, 2.0, v, ' w' || v, 0.3, true
                       FROM range(1, 4) t(v)""")
        con.execute("""INSERT INTO vector_fp_tokens SELECT v, r, v * 10 + r, ' w' || r, ' w' || r, 0.3 / r, r = 1
                       FROM range(1, 4) a(v), range(1, 11) b(r)""")
        # Provenance for the `traced` most probable tokens: n = 1 and n = 10, 6 sampled documents each at n = 10.
        con.execute(f"""CREATE TEMP TABLE traced AS
                        SELECT token_id, text FROM token_fps WHERE scan_id = 1 ORDER BY prob DESC LIMIT {traced}""")
        con.execute("""INSERT INTO provenance (model, token_id, backend, index_name, n, variant, token_text, category,
                       queryable, query, index_is_proxy)
                       SELECT 'gemma3-1b', token_id, 'api', 'v4_dclm-baseline_llama', n, 'as_is', text, 'normal', true,
                              repeat(text, n), true
                       FROM traced, (VALUES (1), (10)) v(n)""")
        con.execute("""INSERT INTO ngram_counts (backend, index_name, query, status, count)
                       SELECT DISTINCT 'api', 'v4_dclm-baseline_llama', query, 'ok',
                              CASE WHEN n = 1 THEN 1000000 + hash(query) % 1000000 ELSE hash(query) % 5000 END
                       FROM provenance""")
        con.execute("""INSERT INTO documents (backend, index_name, query, seed, sample_no, shard, rank, status, snippet,
                       source)
                       SELECT 'api', 'v4_dclm-baseline_llama', query, 0, s, 0, s, 'ok',
                              'lorem ipsum ' || query || ' dolor sit <b>amet</b>', CASE WHEN s < 4 THEN 'pes2o' ELSE 'cc' END
                       FROM provenance, range(6) r(s) WHERE n = 10""")
        add_evidence(con, fps, traced, controls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=int, default=120_000, help="token FPs of the big model")
    parser.add_argument("--traced", type=int, default=2_000, help="tokens with provenance")
    parser.add_argument("--controls", type=int, default=2, help="matched controls per FP in the evidence rows")
    parser.add_argument("--keep", type=Path, help="write the database and reports here instead of a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fpprov-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "bench.duckdb"
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        build_database(db, args.fps, args.traced, args.controls)
        print(f"database: {args.fps:,} + {args.fps // 2:,} + 2,000 token FPs, {args.traced:,} traced tokens, "
              f"{args.controls} controls per FP in {len(EVIDENCE_INDEXES)} indexes, "
              f"built in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        outcome = build_reports(db, folder / "reports")
        seconds = time.perf_counter() - started
        for page in [outcome.index, *outcome.pages]:
            print(f"  {page.name:24} {page.stat().st_size / 1e6:7.2f} MB")
        verdict = "ok" if seconds <= BUDGET_S else "TOO SLOW"
        print(f"fpprov report: {len(outcome.pages) + 1} pages in {seconds:.1f} s (budget {BUDGET_S:.0f} s): {verdict}")
        return 0 if seconds <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
