"""What the report pages show, fetched with SQL: DuckDB does every aggregation (bins, counts, pivots,
shares); Python only shapes rows for display.

All functions take an open read-only Store. Flags are read from ``report_flags``, a TEMP table filled once
per report from the ``token_suspicion`` view (it is the costliest view, and every page needs it).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import FpprovError
from ..db.store import Store

HISTOGRAM_BINS = 20
TOP_N = 20
SNIPPETS_PER_TOKEN = 3
MIXTURE_TOKENS = 10


def apply_threshold_overrides(store: Store, overrides: dict[str, float]) -> None:
    """Shadow suspicion_thresholds with a TEMP copy holding the overrides: nothing is written to the file."""
    if not overrides:
        return
    rules = {r for (r,) in store.query("SELECT rule FROM main.suspicion_thresholds")}
    unknown = sorted(set(overrides) - rules)
    if unknown:
        raise FpprovError(f"unknown suspicion rule {', '.join(unknown)}; rules: {', '.join(sorted(rules))}")
    store.con.execute("CREATE OR REPLACE TEMP TABLE suspicion_thresholds AS FROM main.suspicion_thresholds")
    for rule, value in overrides.items():
        store.con.execute("UPDATE temp.suspicion_thresholds SET threshold = ? WHERE rule = ?", [value, rule])


def prepare_flags(store: Store) -> None:
    store.con.execute("CREATE OR REPLACE TEMP TABLE report_flags AS FROM token_suspicion")
    # per (model, index, rule): FPs and controls with a run and how many the rule flags (every page shows them),
    # also where a rule flags nothing: the controls' rate is the comparison a flag needs
    store.con.execute("CREATE OR REPLACE TEMP TABLE report_flag_rates AS FROM flag_rates")


def thresholds(store: Store) -> list[dict[str, Any]]:
    return store.query_dicts("SELECT rule, threshold, min_support, weight, description FROM suspicion_thresholds "
                             "ORDER BY rule")


# -- index ----------------------------------------------------------------------------------------------
def model_rows(store: Store) -> list[dict[str, Any]]:
    """Every model with results: settings of its primary scan and how many FPs and flags it has."""
    return store.query_dicts("""
        WITH results AS (
            SELECT model FROM scans UNION SELECT model FROM vector_runs UNION SELECT model FROM vector_fps
        ), fps AS (
            SELECT model, count(*) AS token_fps, count(*) FILTER (WHERE verified_float64) AS verified
            FROM primary_fps GROUP BY model
        ), vectors AS (
            SELECT model, count(*) AS vector_fps, count(*) FILTER (WHERE stable) AS stable_vector_fps
            FROM vector_fps GROUP BY model
        ), flags AS (
            SELECT model, count(*) AS flagged FROM report_flags GROUP BY model
        ), prov AS (
            SELECT model, count(DISTINCT token_id) FILTER (WHERE status = 'ok') AS traced
            FROM provenance_counts GROUP BY model
        )
        SELECT r.model, m.family, m.variant, m.quantization, m.hub_id, m.source_kind, m.vocab_size,
               ps.scan_id, ps.dtype, ps.bos, ps.method, ps.complete, ps.id_start, ps.id_stop,
               ps.tokens_scanned, ps.n_scans,
               coalesce(fps.token_fps, 0) AS token_fps, coalesce(fps.verified, 0) AS verified,
               vectors.vector_fps, vectors.stable_vector_fps,
               coalesce(flags.flagged, 0) AS flagged, coalesce(prov.traced, 0) AS traced
        FROM results r
        LEFT JOIN models m ON m.name = r.model
        LEFT JOIN primary_scans ps ON ps.model = r.model
        LEFT JOIN fps ON fps.model = r.model
        LEFT JOIN vectors ON vectors.model = r.model
        LEFT JOIN flags ON flags.model = r.model
        LEFT JOIN prov ON prov.model = r.model
        ORDER BY m.family NULLS LAST, r.model
    """)


def scan_comparison(store: Store, model: str) -> list[dict[str, Any]]:
    """Each other scan of the model against its primary scan, over the ids both cover (e.g. what a BOS
    prefix changes): FPs of each and FPs of both."""
    return store.query_dicts("""
        WITH pairs AS (
            SELECT p.scan_id AS primary_id, o.scan_id, o.bos, o.dtype,
                   greatest(p.id_start, o.id_start) AS lo, least(p.id_stop, o.id_stop) AS hi
            FROM primary_scans p JOIN scans o ON o.model = p.model AND o.scan_id <> p.scan_id
            WHERE p.model = ?
        ), fps AS (
            SELECT pr.scan_id, f.scan_id = pr.primary_id AS in_primary, f.token_id
            FROM pairs pr JOIN token_fps f
              ON f.scan_id IN (pr.primary_id, pr.scan_id) AND f.token_id >= pr.lo AND f.token_id < pr.hi
        ), per_token AS (
            SELECT scan_id, token_id, bool_or(in_primary) AS p, bool_or(NOT in_primary) AS o
            FROM fps GROUP BY ALL
        )
        SELECT pr.scan_id, pr.bos, pr.dtype, pr.lo, pr.hi,
               count(t.token_id) FILTER (WHERE t.p) AS primary_fps,
               count(t.token_id) FILTER (WHERE t.o) AS other_fps,
               count(t.token_id) FILTER (WHERE t.p AND t.o) AS both_fps
        FROM pairs pr LEFT JOIN per_token t ON t.scan_id = pr.scan_id
        WHERE pr.hi > pr.lo
        GROUP BY ALL ORDER BY pr.scan_id
    """, [model])


def bos_comparison(store: Store, model: str) -> dict[str, Any] | None:
    """The primary no-BOS scan against the model's widest BOS scan of the same dtype, over the ids both cover:
    FPs of each, of both, lost and gained with BOS; None without such a pair."""
    rows = store.query_dicts(f"""
        WITH {_BOS_PAIR}
        SELECT pr.*, count(*) FILTER (WHERE t.plain) AS plain_fps, count(*) FILTER (WHERE t.bos) AS bos_fps,
               count(*) FILTER (WHERE t.plain AND t.bos) AS both_fps,
               count(*) FILTER (WHERE t.plain AND NOT t.bos) AS lost, count(*) FILTER (WHERE t.bos AND NOT t.plain) AS gained
        FROM pair pr LEFT JOIN bos_tokens t ON true GROUP BY ALL
    """, [model])
    return rows[0] if rows else None


def bos_changes(store: Store, model: str, limit: int = TOP_N) -> list[tuple]:
    """The most probable FPs a BOS prefix lost (by p without BOS) and gained (by p with BOS): change, id, text,
    vocabulary entry, p without BOS, p with BOS."""
    return store.query(f"""
        WITH {_BOS_PAIR}
        SELECT CASE WHEN plain THEN 'lost' ELSE 'gained' END AS change, token_id, text, raw_token, plain_prob, bos_prob
        FROM bos_tokens WHERE plain <> bos
        QUALIFY row_number() OVER (PARTITION BY change ORDER BY coalesce(plain_prob, bos_prob) DESC, token_id) <= {int(limit)}
        ORDER BY change DESC, coalesce(plain_prob, bos_prob) DESC, token_id
    """, [model])


# `pair`: the model's (first parameter) primary scan when it has no BOS, and the BOS scan of the same dtype
# overlapping it most (complete first); `bos_tokens`: every id of the common range that is an FP of either.
_BOS_PAIR = """
    pair AS (
        SELECT p.scan_id AS plain_scan, b.scan_id AS bos_scan, p.dtype, b.complete AS bos_complete,
               greatest(p.id_start, b.id_start) AS lo, least(p.id_stop, b.id_stop) AS hi
        FROM primary_scans p JOIN scans b ON b.model = p.model AND b.bos AND b.dtype = p.dtype
        WHERE p.model = ? AND NOT p.bos AND least(p.id_stop, b.id_stop) > greatest(p.id_start, b.id_start)
        QUALIFY row_number() OVER (ORDER BY b.complete DESC, least(p.id_stop, b.id_stop)
                                   - greatest(p.id_start, b.id_start) DESC, b.scan_id DESC) = 1
    ), bos_tokens AS (
        SELECT f.token_id, any_value(f.text) AS text, any_value(f.raw_token) AS raw_token,
               bool_or(f.scan_id = pr.plain_scan) AS plain, bool_or(f.scan_id = pr.bos_scan) AS bos,
               any_value(f.prob) FILTER (WHERE f.scan_id = pr.plain_scan) AS plain_prob,
               any_value(f.prob) FILTER (WHERE f.scan_id = pr.bos_scan) AS bos_prob
        FROM pair pr JOIN token_fps f
          ON f.scan_id IN (pr.plain_scan, pr.bos_scan) AND f.token_id >= pr.lo AND f.token_id < pr.hi
        GROUP BY f.token_id
    )"""


def top_flags(store: Store, limit: int = 200) -> list[tuple]:
    """The most suspicious tokens over all models, each with its strongest rule's flag rate among FPs and among
    the matched controls in the same corpus (suspicious_tokens): model, id, text, score, rules, reasons, rule,
    FPs flagged, FPs with a run, controls flagged (NULL for a rule defined for FPs only), controls with a run."""
    return store.query(f"""
        WITH f AS (SELECT model, token_id, text, score, rules, reasons FROM report_flags
                   ORDER BY score DESC, model, token_id LIMIT {int(limit)}),
        s AS (SELECT model, token_id, rule, fp_flagged, fp_with_runs, control_flagged, control_with_runs
              FROM suspicious_tokens WHERE (model, token_id) IN (SELECT (model, token_id) FROM f)
              QUALIFY row_number() OVER (PARTITION BY model, token_id ORDER BY contribution DESC, rule) = 1)
        SELECT f.*, s.rule, s.fp_flagged, s.fp_with_runs, s.control_flagged, s.control_with_runs
        FROM f LEFT JOIN s USING (model, token_id) ORDER BY f.score DESC, f.model, f.token_id""")


def scan_rows(store: Store, model: str | None = None) -> list[dict[str, Any]]:
    """Every scan (of one model when given), marking the primary one."""
    return store.query_dicts("""
        SELECT s.scan_id, s.model, s.dtype, s.bos, s.device, s.method, s.id_start, s.id_stop, s.tokens_scanned,
               s.fp_count, s.rechecked, s.flipped, s.complete, s.seconds, s.started_at,
               ps.scan_id IS NOT NULL AS is_primary
        FROM scans s LEFT JOIN primary_scans ps ON ps.scan_id = s.scan_id
        WHERE ? IS NULL OR s.model = ?
        ORDER BY s.model, s.scan_id
    """, [model, model])


def seed_rows(store: Store) -> list[dict[str, Any]]:
    # Order like the seed: by family, then by model size read from the name ('270m' < '1b' < '13b').
    return store.query_dicts("""
        SELECT *, try_cast(regexp_extract(model, '([0-9]+(\\.[0-9]+)?)([mb])', 1) AS DOUBLE)
                  * CASE regexp_extract(model, '([0-9]+(\\.[0-9]+)?)([mb])', 3) WHEN 'm' THEN 1e-3 ELSE 1 END AS size_b
        FROM seed_counts ORDER BY family, size_b NULLS LAST, model
    """)


@dataclass(frozen=True)
class SeedConventions:
    """How the seed computed its published counts (fpprov/data/seed_counts.toml, [conventions])."""

    dtype: str
    quantization: str
    bos: bool
    ids: str
    embedding: str


@lru_cache(maxsize=1)
def published_seed() -> tuple[SeedConventions, tuple[dict[str, Any], ...]]:
    """The seed's conventions and its published counts, one row per model (pair name and variant)."""
    table = tomllib.loads(resources.files("fpprov.data").joinpath("seed_counts.toml").read_text("utf-8"))
    c = table["conventions"]
    conventions = SeedConventions(c["dtype"], c["quantization"], c["bos"], c["ids"], c["embedding"])
    rows = tuple({"pair_name": pair, "variant": variant, "vocab": counts.get("vocab"),
                  "token_fps": counts[f"token_fps_{variant}"],
                  "vector_fps_iterate": counts[f"vector_fps_iterate_{variant}"],
                  "vector_fps_gradient": counts[f"vector_fps_gradient_{variant}"]}
                 for pair, counts in table["models"].items() for variant in ("base", "inst"))
    return conventions, rows


def seed_comparison(store: Store) -> list[dict[str, Any]]:
    """Every scanned or vector-searched model with the seed's published counts for it (NULL when the seed's
    tables lack it) and the conventions of our counts: primary scan (dtype, BOS, id range against the
    vocabulary), quantization, the embedding spaces and dtypes of the vector search."""
    _, published = published_seed()
    store.con.execute("CREATE OR REPLACE TEMP TABLE seed_published (pair_name VARCHAR, variant VARCHAR, vocab INTEGER, "
                      "token_fps INTEGER, vector_fps_iterate INTEGER, vector_fps_gradient INTEGER)")
    store.con.executemany("INSERT INTO seed_published VALUES (?, ?, ?, ?, ?, ?)",
                          [list(r.values()) for r in published])
    return store.query_dicts("""
        WITH vec AS (
            SELECT model, list(DISTINCT embedding ORDER BY embedding) AS embeddings,
                   list(DISTINCT dtype ORDER BY dtype) AS vector_dtypes
            FROM vector_runs GROUP BY model
        ), vfps AS (   -- per embedding space: the seed's counts are raw-space counts
            SELECT model, list({'embedding': embedding, 'iterate': n_iterate, 'gradient': n_gradient}
                               ORDER BY embedding <> 'raw', embedding) AS vector_counts
            FROM (SELECT model, embedding, count(*) FILTER (WHERE list_contains(methods, 'iterate')) AS n_iterate,
                         count(*) FILTER (WHERE list_contains(methods, 'gradient')) AS n_gradient
                  FROM vector_fps GROUP BY model, embedding)
            GROUP BY model
        ), ours AS (
            SELECT mp.name AS model, mp.pair_name, mp.variant, m.quantization, m.vocab_size,
                   ps.dtype, ps.bos, ps.complete, ps.id_start, ps.id_stop, ps.tokens_scanned, ps.fp_count AS token_fps
            FROM model_pairs mp JOIN models m ON m.name = mp.name LEFT JOIN primary_scans ps ON ps.model = mp.name
        )
        SELECT o.*, vec.embeddings, vec.vector_dtypes,
               CASE WHEN vec.model IS NULL THEN NULL
                    ELSE coalesce(vfps.vector_counts, []) END AS vector_counts,   -- searched, none found: []
               sp.pair_name IS NOT NULL AS in_seed, sp.vocab AS seed_vocab, sp.token_fps AS seed_token_fps,
               sp.vector_fps_iterate AS seed_vector_fps_iterate, sp.vector_fps_gradient AS seed_vector_fps_gradient
        FROM ours o LEFT JOIN vec ON vec.model = o.model LEFT JOIN vfps ON vfps.model = o.model
        LEFT JOIN seed_published sp ON sp.pair_name = o.pair_name AND sp.variant = o.variant
        WHERE o.token_fps IS NOT NULL OR vec.model IS NOT NULL
        ORDER BY NOT in_seed, o.pair_name, o.variant, o.model
    """)


# -- model page -----------------------------------------------------------------------------------------
def probability_histogram(store: Store, model: str) -> list[tuple[float, float, int]]:
    counts = dict(store.query(
        f"SELECT least(floor(prob * {HISTOGRAM_BINS}), {HISTOGRAM_BINS - 1})::INTEGER AS bin, count(*) "
        "FROM primary_fps WHERE model = ? GROUP BY bin", [model]))
    return [(i / HISTOGRAM_BINS, (i + 1) / HISTOGRAM_BINS, counts.get(i, 0)) for i in range(HISTOGRAM_BINS)]


def category_counts(store: Store, model: str) -> list[tuple[str, int]]:
    return store.query("SELECT category, count(*) AS n FROM primary_fps WHERE model = ? GROUP BY category "
                       "ORDER BY n DESC, category", [model])


# Flags with their full reasons for at most this many tokens per page (the FP table names every token's
# rules and score); a model with tens of thousands of flags would otherwise carry megabytes of reasons.
FLAG_DETAIL_TOKENS = 5000


def flagged_tokens(store: Store, model: str) -> list[tuple]:
    return store.query("SELECT token_id, text, score, n_rules, rules, reasons FROM report_flags "
                       f"WHERE model = ? ORDER BY score DESC, token_id LIMIT {FLAG_DETAIL_TOKENS}", [model])


def vector_fps(store: Store, model: str) -> list[dict[str, Any]]:
    return store.query_dicts(f"""
        SELECT v.vector_id, v.embedding, v.dtype, v.dim, v.methods, v.seeds, v.n_runs, v.residual,
               v.stable, v.rollout_dist_max, v.rollout_dist_by_l, v.rollout_feed, v.entropy,
               v.top_token_id, v.top_token_text, v.top_weight, v.top_token_is_fp,
               (SELECT list({{'text': t.text, 'weight': t.weight, 'is_fp': t.is_token_fp, 'token_id': t.token_id}}
                            ORDER BY t.rank)
                FROM vector_fp_tokens t WHERE t.vector_id = v.vector_id AND t.rank <= {MIXTURE_TOKENS}) AS mixture
        FROM vector_fps v WHERE v.model = ? ORDER BY v.vector_id
    """, [model])


def vector_run_summary(store: Store, model: str) -> list[dict[str, Any]]:
    return store.query_dicts("""
        SELECT method, embedding, dtype, count(*) AS runs, count(*) FILTER (WHERE converged) AS converged,
               list(DISTINCT stop_reason ORDER BY stop_reason) AS stop_reasons, median(steps) AS median_steps
        FROM vector_runs WHERE model = ? GROUP BY ALL ORDER BY method, embedding, dtype
    """, [model])


def provenance_rows(store: Store, model: str) -> tuple[list[int], list[dict[str, Any]]]:
    """Counts per n pivoted into one row per (token, index, spelling variant), plus the n values used."""
    ns = [n for (n,) in store.query("SELECT DISTINCT n FROM provenance_counts WHERE model = ? ORDER BY n", [model])]
    rows = store.query_dicts("""
        SELECT c.token_id, any_value(c.token_text) AS token_text, c.backend, c.index_name,
               any_value(c.index_is_proxy) AS index_is_proxy, c.variant, any_value(c.role) AS role,
               map_from_entries(list({'k': c.n, 'v': {'count': c.count, 'status': c.status, 'reason': c.reason}})) AS by_n,
               arg_max(c.count, c.n) AS top_n_count, max(c.count) AS max_count
        FROM provenance_counts c WHERE c.model = ?
        GROUP BY c.token_id, c.backend, c.index_name, c.variant
        ORDER BY top_n_count DESC NULLS LAST, max_count DESC NULLS LAST, c.token_id, c.index_name, c.variant
    """, [model])
    return ns, rows


# Sources and snippets are shown for at most this many tokens per model: the most suspicious, then the most
# frequent. A model traced for every FP would otherwise make a page of hundreds of MB; SQL has the rest.
DETAIL_TOKENS = 2000


def _detail_cte() -> str:
    """`detail`: the DETAIL_TOKENS tokens of the model (first parameter) whose provenance is shown in full."""
    return f"""
    detail AS (
        SELECT c.token_id FROM provenance_counts c
        LEFT JOIN report_flags f ON f.model = c.model AND f.token_id = c.token_id
        WHERE c.model = ? GROUP BY c.token_id
        ORDER BY max(f.score) DESC NULLS LAST, max(c.count) DESC NULLS LAST, c.token_id
        LIMIT {int(DETAIL_TOKENS)}
    )"""


def sampled_token_count(store: Store, model: str) -> int:
    """Tokens of the model with sampled documents (to say when the page shows only DETAIL_TOKENS of them)."""
    return store.query("SELECT count(DISTINCT token_id) FROM source_shares WHERE model = ?", [model])[0][0]


def source_share_rows(store: Store, model: str) -> list[dict[str, Any]]:
    return store.query_dicts(f"""
        WITH {_detail_cte()}
        SELECT token_id, any_value(token_text) AS token_text, index_name, any_value(index_is_proxy) AS index_is_proxy,
               n, variant, any_value(sampled) AS sampled, any_value(role) AS role,
               list({{'source': source, 'share': share, 'docs': docs}} ORDER BY share DESC, source) AS shares
        FROM source_shares WHERE model = ? AND token_id IN (SELECT token_id FROM detail)
        GROUP BY token_id, index_name, n, variant
        ORDER BY token_id, index_name, n, variant
    """, [model, model])


def snippet_rows(store: Store, model: str) -> list[dict[str, Any]]:
    """Up to SNIPPETS_PER_TOKEN sampled documents per token (largest n first), with the query to highlight."""
    return store.query_dicts(f"""
        WITH {_detail_cte()}
        SELECT p.token_id, p.token_text, p.role, p.n, p.variant, p.index_name, d.query, d.snippet, d.needle_offset,
               d.source, d.doc_ix
        FROM provenance p
        JOIN documents d ON d.backend = p.backend AND d.index_name = p.index_name AND d.query = p.query
        WHERE p.model = ? AND d.status = 'ok' AND p.token_id IN (SELECT token_id FROM detail)
        QUALIFY row_number() OVER (PARTITION BY p.token_id ORDER BY p.n DESC, p.variant, d.seed, d.sample_no)
                <= {SNIPPETS_PER_TOKEN}
        ORDER BY p.token_id, p.n DESC, p.variant, d.sample_no
    """, [model, model])


# -- shared page ----------------------------------------------------------------------------------------
def overlap_rows(store: Store) -> list[dict[str, Any]]:
    return store.query_dicts("SELECT * FROM model_overlap ORDER BY family_a, model_a, family_b, model_b")


def shared_rows(store: Store) -> list[tuple]:
    return store.query("""
        SELECT norm_text, n_families, n_models, families, models, raw_tokens, mean_prob
        FROM shared_fps ORDER BY n_families DESC, n_models DESC, mean_prob DESC, norm_text
    """)


def base_vs_inst_rows(store: Store, model: str | None = None) -> list[dict[str, Any]]:
    """Base/instruct pairs (those with `model` as base or instruct when given)."""
    return store.query_dicts("SELECT * FROM base_vs_inst WHERE ? IS NULL OR ? IN (base_model, inst_model) "
                             "ORDER BY family, base_model", [model, model])


def pair_changes(store: Store, model: str, limit: int = 20) -> list[tuple]:
    """The most probable tokens instruction tuning lost and gained in the model's pair."""
    return store.query(f"""
        SELECT change, token_id, text, base_prob, inst_prob FROM base_vs_inst_tokens
        WHERE ? IN (base_model, inst_model) AND change <> 'kept'
        QUALIFY row_number() OVER (PARTITION BY change ORDER BY coalesce(base_prob, inst_prob) DESC, token_id) <= {int(limit)}
        ORDER BY change DESC, coalesce(base_prob, inst_prob) DESC, token_id
    """, [model])
