-- Cross-model views over the core tables: which scan stands for each model, FPs shared across models and
-- families (matched by normalised text, since families use different tokenizers), pairwise overlap,
-- what instruction tuning keeps, loses and gains, and the seed's Base/Inst count table.
-- These comments are the reference: docs/schema.md is generated from them (python -m fpprov.schema_docs);
-- how to use the views: docs/reports.md.

-- Each model with the name of the row it takes in Base/Inst tables: the model name without a trailing
-- '-inst' / '-instruct' / '-it' / '-chat' (or '-base'), so 'olmo2-1b' and 'olmo2-1b-inst' pair up.
-- A model of unknown variant is treated as a base model (it fills the Base column).
-- Example: SELECT name, family, variant, pair_name FROM model_pairs ORDER BY pair_name;
-- Columns:
--   name: models.name
--   family: the model's family; the model's own name when unknown
--   variant: 'base' or 'inst' (unknown counts as 'base')
--   pair_name: the name without its instruct/base suffix: the row of Base/Inst tables
--   quantization, tokenizer_family: as in `models`
CREATE VIEW model_pairs AS
SELECT
    m.name,
    coalesce(m.family, m.name) AS family,   -- unknown family: the model is its own family
    coalesce(m.variant, 'base') AS variant,
    regexp_replace(m.name, '(?i)-(inst|instruct|it|chat|base)$', '') AS pair_name,
    m.quantization,
    m.tokenizer_family
FROM models m;

-- One scan per model, the one every cross-model view uses: complete before interrupted, no BOS before BOS
-- (the seed fed no BOS, so counts stay comparable with its tables), then the widest id range, then the newest.
-- Example: SELECT model, scan_id, dtype, bos, tokens_scanned, fp_count FROM primary_scans;
-- Columns:
--   scan_id, model, dtype, bos, complete, id_start, id_stop, tokens_scanned, fp_count, method, started_at, finished_at:
--       as in `scans`
CREATE VIEW primary_scans AS
SELECT * EXCLUDE (pick) FROM (
    SELECT
        s.scan_id, s.model, s.dtype, s.bos, s.complete, s.id_start, s.id_stop, s.tokens_scanned, s.fp_count,
        s.method, s.started_at, s.finished_at,
        count(*) OVER (PARTITION BY s.model) AS n_scans,   -- all scans of the model, primary or not
        row_number() OVER (
            PARTITION BY s.model
            ORDER BY s.complete DESC, s.bos ASC, (s.id_stop - s.id_start) DESC, s.started_at DESC, s.scan_id DESC
        ) AS pick
    FROM scans s
) WHERE pick = 1;

-- The FPs of every model's primary scan, with the model's family and variant.
-- Example: SELECT model, text, prob FROM primary_fps WHERE family = 'gemma3' ORDER BY prob DESC LIMIT 10;
-- Columns:
--   model: models.name
--   family, variant, pair_name: as in `model_pairs`
--   scan_id, token_id, raw_token, text, norm_text, category, prob, logit, margin, verified_float64: as in
--       `token_fps`
CREATE VIEW primary_fps AS
SELECT
    f.model, coalesce(mp.family, f.model) AS family, coalesce(mp.variant, 'base') AS variant,
    mp.pair_name, f.scan_id, f.token_id, f.raw_token, f.text, f.norm_text, f.category,
    f.prob, f.logit, f.margin, f.verified_float64
FROM token_fps f
JOIN primary_scans ps ON ps.scan_id = f.scan_id
LEFT JOIN model_pairs mp ON mp.name = f.model;

-- FP texts found in two or more models. Texts containing U+FFFD (byte fragments that do not decode on
-- their own) are left out: every tokenizer decodes them to the same replacement character, which would
-- match them across models for no reason.
-- Example: SELECT norm_text, n_models, n_families, models FROM shared_fps WHERE n_families >= 2 LIMIT 20;
-- Columns:
--   norm_text: the shared text (token_fps.norm_text)
--   n_models, n_families: how many models and families have it as an FP
--   models, families: which (sorted)
--   min_prob, max_prob, mean_prob: its probability across those models
CREATE VIEW shared_fps AS
SELECT
    norm_text,
    count(DISTINCT model) AS n_models,
    count(DISTINCT family) AS n_families,
    list(DISTINCT model ORDER BY model) AS models,
    list(DISTINCT family ORDER BY family) AS families,
    list(DISTINCT raw_token ORDER BY raw_token) AS raw_tokens,   -- vocabulary spellings across tokenizers
    min(prob) AS min_prob,
    max(prob) AS max_prob,
    avg(prob) AS mean_prob
FROM primary_fps
WHERE norm_text IS NOT NULL AND norm_text <> '' AND NOT contains(norm_text, chr(65533))
GROUP BY norm_text
HAVING count(DISTINCT model) >= 2;

-- Every ordered pair of scanned models: FP texts of each, texts they share and the Jaccard index
-- (shared / union). Both orders are present, so `WHERE model_a = 'x'` lists all of x's partners.
-- Example: SELECT model_a, model_b, shared, round(jaccard, 3) AS jaccard FROM model_overlap
--          WHERE model_a = 'gemma3-270m' ORDER BY jaccard DESC;
-- Columns:
--   model_a, model_b: the pair (both orders, never a model with itself)
--   family_a, family_b: their families
--   fps_a, fps_b: distinct FP texts of each (U+FFFD texts excluded)
--   shared: texts both have
--   jaccard: shared / (fps_a + fps_b - shared); NULL when both are empty
CREATE VIEW model_overlap AS
WITH texts AS (
    SELECT DISTINCT model, family, norm_text FROM primary_fps
    WHERE norm_text IS NOT NULL AND norm_text <> '' AND NOT contains(norm_text, chr(65533))
), sizes AS (
    SELECT ps.model, coalesce(mp.family, ps.model) AS family, count(t.norm_text) AS n_texts
    FROM primary_scans ps
    LEFT JOIN model_pairs mp ON mp.name = ps.model
    LEFT JOIN texts t ON t.model = ps.model
    GROUP BY ALL
), pair_counts AS (
    SELECT a.model AS model_a, b.model AS model_b, count(*) AS shared
    FROM texts a JOIN texts b ON a.norm_text = b.norm_text AND a.model <> b.model
    GROUP BY ALL
)
SELECT
    a.model AS model_a, b.model AS model_b, a.family AS family_a, b.family AS family_b,
    a.n_texts AS fps_a, b.n_texts AS fps_b,
    coalesce(pc.shared, 0) AS shared,
    CASE WHEN a.n_texts + b.n_texts - coalesce(pc.shared, 0) = 0 THEN NULL
         ELSE coalesce(pc.shared, 0) / (a.n_texts + b.n_texts - coalesce(pc.shared, 0)) END AS jaccard
FROM sizes a
JOIN sizes b ON a.model <> b.model
LEFT JOIN pair_counts pc ON pc.model_a = a.model AND pc.model_b = b.model;

-- Each base/instruct pair with their primary scans and the id range both cover (what the two views below
-- compare). Example: FROM base_inst_pairs ORDER BY family, pair_name;
-- Columns:
--   family, pair_name: the pair (see `model_pairs`)
--   base_model, inst_model: models.name of each side
--   base_scan, inst_scan: their primary scans (scans.scan_id)
--   id_start, id_stop: the id range [id_start, id_stop) both scans cover
CREATE VIEW base_inst_pairs AS
SELECT b.family, b.pair_name, b.name AS base_model, i.name AS inst_model,
       sb.scan_id AS base_scan, si.scan_id AS inst_scan,
       greatest(sb.id_start, si.id_start) AS id_start, least(sb.id_stop, si.id_stop) AS id_stop
FROM model_pairs b
JOIN model_pairs i ON i.pair_name = b.pair_name AND i.variant = 'inst'
JOIN primary_scans sb ON sb.model = b.name
JOIN primary_scans si ON si.model = i.name
WHERE b.variant = 'base';

-- Per token, what instruction tuning did to each base/instruct pair of a family: 'kept' (FP in both),
-- 'lost' (FP of the base model only) or 'gained' (FP of the instruct model only). Base and instruct
-- models share a tokenizer, so tokens match by id; only ids inside both primary scans' ranges count
-- (a slice scan of one model says nothing about ids it did not scan).
-- Example: SELECT change, text, base_prob, inst_prob FROM base_vs_inst_tokens
--          WHERE pair_name = 'gemma3-270m' AND change = 'gained' ORDER BY inst_prob DESC;
-- Columns:
--   family, pair_name, base_model, inst_model: as in `base_inst_pairs`
--   token_id: the token (the same id in both models)
--   raw_token, text, norm_text: as in `token_fps`
--   change: 'kept' (FP of both), 'lost' (base only), 'gained' (instruct only)
--   base_prob, inst_prob: its probability in each model; NULL where it is not an FP
CREATE VIEW base_vs_inst_tokens AS
WITH pairs AS (FROM base_inst_pairs), base AS (
    SELECT p.*, f.token_id, f.raw_token, f.text, f.norm_text, f.prob
    FROM pairs p JOIN token_fps f ON f.scan_id = p.base_scan AND f.token_id >= p.id_start AND f.token_id < p.id_stop
), inst AS (
    SELECT p.*, f.token_id, f.raw_token, f.text, f.norm_text, f.prob
    FROM pairs p JOIN token_fps f ON f.scan_id = p.inst_scan AND f.token_id >= p.id_start AND f.token_id < p.id_stop
)
SELECT
    coalesce(b.family, i.family) AS family,
    coalesce(b.pair_name, i.pair_name) AS pair_name,
    coalesce(b.base_model, i.base_model) AS base_model,
    coalesce(b.inst_model, i.inst_model) AS inst_model,
    coalesce(b.token_id, i.token_id) AS token_id,
    coalesce(b.raw_token, i.raw_token) AS raw_token,
    coalesce(b.text, i.text) AS text,
    coalesce(b.norm_text, i.norm_text) AS norm_text,
    CASE WHEN b.token_id IS NOT NULL AND i.token_id IS NOT NULL THEN 'kept'
         WHEN b.token_id IS NOT NULL THEN 'lost'
         ELSE 'gained' END AS change,
    b.prob AS base_prob,
    i.prob AS inst_prob
FROM base b
FULL OUTER JOIN inst i ON i.pair_name = b.pair_name AND i.token_id = b.token_id;

-- One row per base/instruct pair: FPs kept, lost and gained by instruction tuning over the ids both
-- primary scans cover.
-- Example: FROM base_vs_inst WHERE family = 'gemma3';
-- Columns:
--   family, pair_name, base_model, inst_model, id_start, id_stop: as in `base_inst_pairs`
--   kept, lost, gained: tokens in each class (see `base_vs_inst_tokens`)
--   inst_fps: FPs of the instruct model in the common range
--   kept_share: kept / base_fps; NULL when the base model has none there
CREATE VIEW base_vs_inst AS
WITH pairs AS (FROM base_inst_pairs), changes AS (
    SELECT pair_name, base_model, inst_model,
           count(*) FILTER (WHERE change = 'kept') AS kept,
           count(*) FILTER (WHERE change = 'lost') AS lost,
           count(*) FILTER (WHERE change = 'gained') AS gained
    FROM base_vs_inst_tokens GROUP BY ALL
)
SELECT
    p.family, p.pair_name, p.base_model, p.inst_model, p.id_start, p.id_stop,
    coalesce(c.kept, 0) AS kept,
    coalesce(c.lost, 0) AS lost,
    coalesce(c.gained, 0) AS gained,
    coalesce(c.kept, 0) + coalesce(c.lost, 0) AS base_fps,      -- FPs of the base model in the common range
    coalesce(c.kept, 0) + coalesce(c.gained, 0) AS inst_fps,
    CASE WHEN coalesce(c.kept, 0) + coalesce(c.lost, 0) = 0 THEN NULL
         ELSE coalesce(c.kept, 0) / (coalesce(c.kept, 0) + coalesce(c.lost, 0)) END AS kept_share
FROM pairs p
LEFT JOIN changes c ON c.base_model = p.base_model AND c.inst_model = p.inst_model;

-- The seed's tables in one: per base/instruct pair, token FPs of each primary scan (with the ids it
-- scanned, since a slice scan counts fewer) and deduplicated vector FPs, in total and per search method.
-- Example: SELECT model, base_token_fps AS base, inst_token_fps AS inst, base_vector_fps, inst_vector_fps
--          FROM seed_counts ORDER BY family, model;
-- Columns:
--   model: the pair name (row of the seed's table)
--   family: the pair's family
--   base_model, inst_model: the two models (NULL when one is missing)
--   base_token_fps, inst_token_fps: token FPs of each primary scan
--   base_tokens_scanned, inst_tokens_scanned: ids each primary scan covered (a slice counts fewer)
--   base_bos, inst_bos: the primary scans' BOS setting
--   base_vector_fps, inst_vector_fps: deduplicated vector FPs; 0 when searched and none found, NULL when never
--       searched
--   base_vector_fps_iterate, inst_vector_fps_iterate: vector FPs found by fixed-point iteration
--   base_vector_fps_gradient, inst_vector_fps_gradient: vector FPs found by gradient descent
CREATE VIEW seed_counts AS
WITH token_counts AS (
    SELECT ps.model, ps.tokens_scanned, ps.bos, count(f.token_id) AS token_fps
    FROM primary_scans ps LEFT JOIN token_fps f ON f.scan_id = ps.scan_id
    GROUP BY ALL
), vector_searched AS (
    -- a model whose vector search ran but found nothing counts 0 FPs; one never searched stays NULL
    SELECT DISTINCT model FROM vector_runs UNION SELECT DISTINCT model FROM vector_fps
), vector_counts AS (
    SELECT vs.model,
           count(v.vector_id) AS vector_fps,
           count(v.vector_id) FILTER (WHERE list_contains(v.methods, 'iterate')) AS vector_fps_iterate,
           count(v.vector_id) FILTER (WHERE list_contains(v.methods, 'gradient')) AS vector_fps_gradient
    FROM vector_searched vs LEFT JOIN vector_fps v ON v.model = vs.model
    GROUP BY vs.model
), per_model AS (
    SELECT mp.pair_name, mp.family, mp.variant, mp.name,
           tc.token_fps, tc.tokens_scanned, tc.bos,
           vc.vector_fps, vc.vector_fps_iterate, vc.vector_fps_gradient
    FROM model_pairs mp
    LEFT JOIN token_counts tc ON tc.model = mp.name
    LEFT JOIN vector_counts vc ON vc.model = mp.name
    WHERE tc.model IS NOT NULL OR vc.model IS NOT NULL      -- models with results only
)
SELECT
    pair_name AS model,
    any_value(family) AS family,
    any_value(name) FILTER (WHERE variant = 'base') AS base_model,
    any_value(name) FILTER (WHERE variant = 'inst') AS inst_model,
    any_value(token_fps) FILTER (WHERE variant = 'base') AS base_token_fps,
    any_value(token_fps) FILTER (WHERE variant = 'inst') AS inst_token_fps,
    any_value(tokens_scanned) FILTER (WHERE variant = 'base') AS base_tokens_scanned,
    any_value(tokens_scanned) FILTER (WHERE variant = 'inst') AS inst_tokens_scanned,
    any_value(bos) FILTER (WHERE variant = 'base') AS base_bos,
    any_value(bos) FILTER (WHERE variant = 'inst') AS inst_bos,
    any_value(vector_fps) FILTER (WHERE variant = 'base') AS base_vector_fps,
    any_value(vector_fps) FILTER (WHERE variant = 'inst') AS inst_vector_fps,
    any_value(vector_fps_iterate) FILTER (WHERE variant = 'base') AS base_vector_fps_iterate,
    any_value(vector_fps_iterate) FILTER (WHERE variant = 'inst') AS inst_vector_fps_iterate,
    any_value(vector_fps_gradient) FILTER (WHERE variant = 'base') AS base_vector_fps_gradient,
    any_value(vector_fps_gradient) FILTER (WHERE variant = 'inst') AS inst_vector_fps_gradient
FROM per_model
GROUP BY pair_name;
