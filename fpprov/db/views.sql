-- The views, each defined once, in dependency order. fpprov applies this file after the migrations on every
-- writable open (store.apply_views), so a database of any version ends up with exactly these views; the
-- migrations hold tables only. A view's description follows its definition as COMMENT ON statements (a
-- CREATE OR REPLACE VIEW drops the comments of the view and of its columns, so they are made again with it);
-- docs/schema.md is generated from them (python -m fpprov.db.schema_docs). How to use the views:
-- docs/reports.md. The schema is a user interface: keep a view's columns, add new ones at the end.

CREATE OR REPLACE VIEW model_pairs AS
SELECT
    m.name,
    coalesce(m.family, m.name) AS family,   -- unknown family: the model is its own family
    coalesce(m.variant, 'base') AS variant,
    regexp_replace(m.name, '(?i)-(inst|instruct|it|chat|base)$', '') AS pair_name,
    m.quantization,
    m.tokenizer_family
FROM models m;
COMMENT ON VIEW model_pairs IS
    'Each model with the name of the row it takes in Base/Inst tables: the model name without a trailing '
    '''-inst'' / ''-instruct'' / ''-it'' / ''-chat'' (or ''-base''), so ''olmo2-1b'' and ''olmo2-1b-inst'' '
    'pair up. A model of unknown variant is treated as a base model (it fills the Base column).'
    ' Example: SELECT name, family, variant, pair_name FROM model_pairs ORDER BY pair_name;';
COMMENT ON COLUMN model_pairs.name IS 'models.name';
COMMENT ON COLUMN model_pairs.family IS 'the model''s family; the model''s own name when unknown';
COMMENT ON COLUMN model_pairs.variant IS '''base'' or ''inst'' (unknown counts as ''base'')';
COMMENT ON COLUMN model_pairs.pair_name IS
    'the name without its instruct/base suffix: the row of Base/Inst tables';
COMMENT ON COLUMN model_pairs.quantization IS
    'e.g. ''Q4_K_M GGUF dequantized to float32''; NULL for none (as in `models`)';
COMMENT ON COLUMN model_pairs.tokenizer_family IS
    'tokenizer lineage from the alias file, else NULL (as in `models`)';

CREATE OR REPLACE VIEW primary_scans AS
SELECT * EXCLUDE (pick) FROM (
    SELECT
        s.scan_id, s.model, s.dtype, s.bos, s.complete, s.id_start, s.id_stop, s.tokens_scanned, s.fp_count,
        s.method, s.started_at, s.finished_at,
        count(*) OVER (PARTITION BY s.model) AS n_scans,
        row_number() OVER (
            PARTITION BY s.model
            ORDER BY s.complete DESC, s.bos ASC, (s.id_stop - s.id_start) DESC, s.started_at DESC, s.scan_id DESC
        ) AS pick
    FROM scans s
) WHERE pick = 1;
COMMENT ON VIEW primary_scans IS
    'One scan per model, the one every cross-model view uses: complete before interrupted, no BOS before BOS '
    '(the seed fed no BOS, so counts stay comparable with its tables), then the widest id range, then the '
    'newest.'
    ' Example: SELECT model, scan_id, dtype, bos, tokens_scanned, fp_count FROM primary_scans;';
COMMENT ON COLUMN primary_scans.scan_id IS 'key: the scan''s id (as in `scans`)';
COMMENT ON COLUMN primary_scans.model IS 'models.name (as in `scans`)';
COMMENT ON COLUMN primary_scans.dtype IS 'float32 | float64 | bfloat16 | float16 (as in `scans`)';
COMMENT ON COLUMN primary_scans.bos IS 'a BOS token was prepended: input [bos, t] (as in `scans`)';
COMMENT ON COLUMN primary_scans.complete IS 'every chunk of the id range is committed (as in `scans`)';
COMMENT ON COLUMN primary_scans.id_start IS 'first token id of the scanned range (as in `scans`)';
COMMENT ON COLUMN primary_scans.id_stop IS 'one past the last token id of the range (as in `scans`)';
COMMENT ON COLUMN primary_scans.tokens_scanned IS 'ids whose verdict is stored (as in `scans`)';
COMMENT ON COLUMN primary_scans.fp_count IS 'token FPs found (as in `scans`)';
COMMENT ON COLUMN primary_scans.method IS
    '''length1-pruned'' (exact length-1 shortcut) | ''forward-pruned'' (the model''s own forward) (as in '
    '`scans`)';
COMMENT ON COLUMN primary_scans.started_at IS 'when the scan first started (as in `scans`)';
COMMENT ON COLUMN primary_scans.finished_at IS 'NULL until complete (as in `scans`)';
COMMENT ON COLUMN primary_scans.n_scans IS 'all scans of the model, primary or not';

CREATE OR REPLACE VIEW primary_fps AS
SELECT
    f.model, coalesce(mp.family, f.model) AS family, coalesce(mp.variant, 'base') AS variant,
    mp.pair_name, f.scan_id, f.token_id, f.raw_token, f.text, f.norm_text, f.category,
    f.prob, f.logit, f.margin, f.verified_float64
FROM token_fps f
JOIN primary_scans ps ON ps.scan_id = f.scan_id
LEFT JOIN model_pairs mp ON mp.name = f.model;
COMMENT ON VIEW primary_fps IS
    'The FPs of every model''s primary scan, with the model''s family and variant.'
    ' Example: SELECT model, text, prob FROM primary_fps WHERE family = ''gemma3'' ORDER BY prob DESC LIMIT 10;';
COMMENT ON COLUMN primary_fps.model IS 'models.name';
COMMENT ON COLUMN primary_fps.family IS
    'the model''s family; the model''s own name when unknown (as in `model_pairs`)';
COMMENT ON COLUMN primary_fps.variant IS
    '''base'' or ''inst'' (unknown counts as ''base'') (as in `model_pairs`)';
COMMENT ON COLUMN primary_fps.pair_name IS
    'the name without its instruct/base suffix: the row of Base/Inst tables (as in `model_pairs`)';
COMMENT ON COLUMN primary_fps.scan_id IS 'scans.scan_id (as in `token_fps`)';
COMMENT ON COLUMN primary_fps.token_id IS 'the token''s vocabulary id (as in `token_fps`)';
COMMENT ON COLUMN primary_fps.raw_token IS
    'the vocabulary string (e.g. ''Ġblah'', ''▁blah'', ''<0xC3>'') (as in `token_fps`)';
COMMENT ON COLUMN primary_fps.text IS 'decoded text of the single token (as in `token_fps`)';
COMMENT ON COLUMN primary_fps.norm_text IS
    'text for matching across tokenizers: leading-space markers (Ġ, ▁) as a space, Unicode NFC (as in '
    '`token_fps`)';
COMMENT ON COLUMN primary_fps.category IS
    'normal | special (the tokenizer''s special tokens) | byte_fragment (decodes to an incomplete UTF-8 '
    'sequence, or a <0xNN> byte token) | unreachable (re-encoding its text does not give the token back) (as '
    'in `token_fps`)';
COMMENT ON COLUMN primary_fps.prob IS
    'softmax probability of the token itself for the input [t] (as in `token_fps`)';
COMMENT ON COLUMN primary_fps.logit IS 'its own logit (as in `token_fps`)';
COMMENT ON COLUMN primary_fps.margin IS 'logit - runner_up_logit, in the scan dtype (> 0) (as in `token_fps`)';
COMMENT ON COLUMN primary_fps.verified_float64 IS
    're-checked one token at a time in float64 and still an FP (as in `token_fps`)';

CREATE OR REPLACE VIEW shared_fps AS
SELECT
    norm_text,
    count(DISTINCT model) AS n_models,
    count(DISTINCT family) AS n_families,
    list(DISTINCT model ORDER BY model) AS models,
    list(DISTINCT family ORDER BY family) AS families,
    list(DISTINCT raw_token ORDER BY raw_token) AS raw_tokens,
    min(prob) AS min_prob,
    max(prob) AS max_prob,
    avg(prob) AS mean_prob
FROM primary_fps
WHERE norm_text IS NOT NULL AND norm_text <> '' AND NOT contains(norm_text, chr(65533))
GROUP BY norm_text
HAVING count(DISTINCT model) >= 2;
COMMENT ON VIEW shared_fps IS
    'FP texts found in two or more models. Texts containing U+FFFD (byte fragments that do not decode on their '
    'own) are left out: every tokenizer decodes them to the same replacement character, which would match them '
    'across models for no reason.'
    ' Example: SELECT norm_text, n_models, n_families, models FROM shared_fps WHERE n_families >= 2 LIMIT 20;';
COMMENT ON COLUMN shared_fps.norm_text IS 'the shared text (token_fps.norm_text)';
COMMENT ON COLUMN shared_fps.n_models IS 'how many models and families have it as an FP';
COMMENT ON COLUMN shared_fps.n_families IS 'how many models and families have it as an FP';
COMMENT ON COLUMN shared_fps.models IS 'which (sorted)';
COMMENT ON COLUMN shared_fps.families IS 'which (sorted)';
COMMENT ON COLUMN shared_fps.raw_tokens IS 'vocabulary spellings across tokenizers';
COMMENT ON COLUMN shared_fps.min_prob IS 'its probability across those models';
COMMENT ON COLUMN shared_fps.max_prob IS 'its probability across those models';
COMMENT ON COLUMN shared_fps.mean_prob IS 'its probability across those models';

CREATE OR REPLACE VIEW model_overlap AS
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
COMMENT ON VIEW model_overlap IS
    'Every ordered pair of scanned models: FP texts of each, texts they share and the Jaccard index (shared / '
    'union). Both orders are present, so `WHERE model_a = ''x''` lists all of x''s partners.'
    ' Example: SELECT model_a, model_b, shared, round(jaccard, 3) AS jaccard FROM model_overlap
WHERE model_a = ''gemma3-270m'' ORDER BY jaccard DESC;';
COMMENT ON COLUMN model_overlap.model_a IS 'the pair (both orders, never a model with itself)';
COMMENT ON COLUMN model_overlap.model_b IS 'the pair (both orders, never a model with itself)';
COMMENT ON COLUMN model_overlap.family_a IS 'their families';
COMMENT ON COLUMN model_overlap.family_b IS 'their families';
COMMENT ON COLUMN model_overlap.fps_a IS 'distinct FP texts of each (U+FFFD texts excluded)';
COMMENT ON COLUMN model_overlap.fps_b IS 'distinct FP texts of each (U+FFFD texts excluded)';
COMMENT ON COLUMN model_overlap.shared IS 'texts both have';
COMMENT ON COLUMN model_overlap.jaccard IS 'shared / (fps_a + fps_b - shared); NULL when both are empty';

CREATE OR REPLACE VIEW base_inst_pairs AS
SELECT b.family, b.pair_name, b.name AS base_model, i.name AS inst_model,
       sb.scan_id AS base_scan, si.scan_id AS inst_scan,
       greatest(sb.id_start, si.id_start) AS id_start, least(sb.id_stop, si.id_stop) AS id_stop
FROM model_pairs b
JOIN model_pairs i ON i.pair_name = b.pair_name AND i.variant = 'inst'
JOIN primary_scans sb ON sb.model = b.name
JOIN primary_scans si ON si.model = i.name
WHERE b.variant = 'base';
COMMENT ON VIEW base_inst_pairs IS
    'Each base/instruct pair with their primary scans and the id range both cover (what the two views below '
    'compare).'
    ' Example: FROM base_inst_pairs ORDER BY family, pair_name;';
COMMENT ON COLUMN base_inst_pairs.family IS 'the pair (see `model_pairs`)';
COMMENT ON COLUMN base_inst_pairs.pair_name IS 'the pair (see `model_pairs`)';
COMMENT ON COLUMN base_inst_pairs.base_model IS 'models.name of each side';
COMMENT ON COLUMN base_inst_pairs.inst_model IS 'models.name of each side';
COMMENT ON COLUMN base_inst_pairs.base_scan IS 'their primary scans (scans.scan_id)';
COMMENT ON COLUMN base_inst_pairs.inst_scan IS 'their primary scans (scans.scan_id)';
COMMENT ON COLUMN base_inst_pairs.id_start IS 'the id range [id_start, id_stop) both scans cover';
COMMENT ON COLUMN base_inst_pairs.id_stop IS 'the id range [id_start, id_stop) both scans cover';

CREATE OR REPLACE VIEW base_vs_inst_tokens AS
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
COMMENT ON VIEW base_vs_inst_tokens IS
    'Per token, what instruction tuning did to each base/instruct pair of a family: ''kept'' (FP in both), '
    '''lost'' (FP of the base model only) or ''gained'' (FP of the instruct model only). Base and instruct '
    'models share a tokenizer, so tokens match by id; only ids inside both primary scans'' ranges count (a '
    'slice scan of one model says nothing about ids it did not scan).'
    ' Example: SELECT change, text, base_prob, inst_prob FROM base_vs_inst_tokens
WHERE pair_name = ''gemma3-270m'' AND change = ''gained'' ORDER BY inst_prob DESC;';
COMMENT ON COLUMN base_vs_inst_tokens.family IS 'the pair (see `model_pairs`) (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst_tokens.pair_name IS 'the pair (see `model_pairs`) (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst_tokens.base_model IS 'models.name of each side (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst_tokens.inst_model IS 'models.name of each side (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst_tokens.token_id IS 'the token (the same id in both models)';
COMMENT ON COLUMN base_vs_inst_tokens.raw_token IS
    'the vocabulary string (e.g. ''Ġblah'', ''▁blah'', ''<0xC3>'') (as in `token_fps`)';
COMMENT ON COLUMN base_vs_inst_tokens.text IS 'decoded text of the single token (as in `token_fps`)';
COMMENT ON COLUMN base_vs_inst_tokens.norm_text IS
    'text for matching across tokenizers: leading-space markers (Ġ, ▁) as a space, Unicode NFC (as in '
    '`token_fps`)';
COMMENT ON COLUMN base_vs_inst_tokens.change IS
    '''kept'' (FP of both), ''lost'' (base only), ''gained'' (instruct only)';
COMMENT ON COLUMN base_vs_inst_tokens.base_prob IS 'its probability in each model; NULL where it is not an FP';
COMMENT ON COLUMN base_vs_inst_tokens.inst_prob IS 'its probability in each model; NULL where it is not an FP';

CREATE OR REPLACE VIEW base_vs_inst AS
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
    coalesce(c.kept, 0) + coalesce(c.lost, 0) AS base_fps,
    coalesce(c.kept, 0) + coalesce(c.gained, 0) AS inst_fps,
    CASE WHEN coalesce(c.kept, 0) + coalesce(c.lost, 0) = 0 THEN NULL
         ELSE coalesce(c.kept, 0) / (coalesce(c.kept, 0) + coalesce(c.lost, 0)) END AS kept_share
FROM pairs p
LEFT JOIN changes c ON c.base_model = p.base_model AND c.inst_model = p.inst_model;
COMMENT ON VIEW base_vs_inst IS
    'One row per base/instruct pair: FPs kept, lost and gained by instruction tuning over the ids both primary '
    'scans cover.'
    ' Example: FROM base_vs_inst WHERE family = ''gemma3'';';
COMMENT ON COLUMN base_vs_inst.family IS 'the pair (see `model_pairs`) (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst.pair_name IS 'the pair (see `model_pairs`) (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst.base_model IS 'models.name of each side (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst.inst_model IS 'models.name of each side (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst.id_start IS
    'the id range [id_start, id_stop) both scans cover (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst.id_stop IS
    'the id range [id_start, id_stop) both scans cover (as in `base_inst_pairs`)';
COMMENT ON COLUMN base_vs_inst.kept IS 'tokens in each class (see `base_vs_inst_tokens`)';
COMMENT ON COLUMN base_vs_inst.lost IS 'tokens in each class (see `base_vs_inst_tokens`)';
COMMENT ON COLUMN base_vs_inst.gained IS 'tokens in each class (see `base_vs_inst_tokens`)';
COMMENT ON COLUMN base_vs_inst.base_fps IS 'FPs of the base model in the common range';
COMMENT ON COLUMN base_vs_inst.inst_fps IS 'FPs of the instruct model in the common range';
COMMENT ON COLUMN base_vs_inst.kept_share IS 'kept / base_fps; NULL when the base model has none there';

CREATE OR REPLACE VIEW seed_counts AS
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
COMMENT ON VIEW seed_counts IS
    'The seed''s tables in one: per base/instruct pair, token FPs of each primary scan (with the ids it '
    'scanned, since a slice scan counts fewer) and deduplicated vector FPs, in total and per search method.'
    ' Example: SELECT model, base_token_fps AS base, inst_token_fps AS inst, base_vector_fps, inst_vector_fps
FROM seed_counts ORDER BY family, model;';
COMMENT ON COLUMN seed_counts.model IS 'the pair name (row of the seed''s table)';
COMMENT ON COLUMN seed_counts.family IS 'the pair''s family';
COMMENT ON COLUMN seed_counts.base_model IS 'the two models (NULL when one is missing)';
COMMENT ON COLUMN seed_counts.inst_model IS 'the two models (NULL when one is missing)';
COMMENT ON COLUMN seed_counts.base_token_fps IS 'token FPs of each primary scan';
COMMENT ON COLUMN seed_counts.inst_token_fps IS 'token FPs of each primary scan';
COMMENT ON COLUMN seed_counts.base_tokens_scanned IS 'ids each primary scan covered (a slice counts fewer)';
COMMENT ON COLUMN seed_counts.inst_tokens_scanned IS 'ids each primary scan covered (a slice counts fewer)';
COMMENT ON COLUMN seed_counts.base_bos IS 'the primary scans'' BOS setting';
COMMENT ON COLUMN seed_counts.inst_bos IS 'the primary scans'' BOS setting';
COMMENT ON COLUMN seed_counts.base_vector_fps IS
    'deduplicated vector FPs; 0 when searched and none found, NULL when never searched';
COMMENT ON COLUMN seed_counts.inst_vector_fps IS
    'deduplicated vector FPs; 0 when searched and none found, NULL when never searched';
COMMENT ON COLUMN seed_counts.base_vector_fps_iterate IS 'vector FPs found by fixed-point iteration';
COMMENT ON COLUMN seed_counts.inst_vector_fps_iterate IS 'vector FPs found by fixed-point iteration';
COMMENT ON COLUMN seed_counts.base_vector_fps_gradient IS 'vector FPs found by gradient descent';
COMMENT ON COLUMN seed_counts.inst_vector_fps_gradient IS 'vector FPs found by gradient descent';

CREATE OR REPLACE VIEW fp_undertrained AS
WITH scanned AS (
    SELECT p.model, p.scan_id, u.token_id, u.undertrained,
           EXISTS (SELECT 1 FROM token_fps f WHERE f.scan_id = p.scan_id AND f.token_id = u.token_id) AS is_fp
    FROM primary_scans p
    JOIN scans s ON s.scan_id = p.scan_id
    JOIN undertrained_tokens u ON u.model = p.model AND u.token_id >= s.id_start AND u.token_id < s.id_stop
)
SELECT
    model,
    any_value(scan_id) AS scan_id,
    count(*) AS ids,
    count(*) FILTER (WHERE is_fp AND undertrained) AS fp_undertrained,
    count(*) FILTER (WHERE is_fp AND NOT undertrained) AS fp_trained,
    count(*) FILTER (WHERE NOT is_fp AND undertrained) AS nonfp_undertrained,
    count(*) FILTER (WHERE NOT is_fp AND NOT undertrained) AS nonfp_trained,
    count(*) FILTER (WHERE is_fp AND undertrained) / greatest(count(*) FILTER (WHERE is_fp), 1) AS fp_undertrained_share,
    count(*) FILTER (WHERE NOT is_fp AND undertrained) / greatest(count(*) FILTER (WHERE NOT is_fp), 1) AS nonfp_undertrained_share
FROM scanned
GROUP BY model;
COMMENT ON VIEW fp_undertrained IS
    'Each model''s primary-scan FPs against its under-trained candidates, counted over the ids the scan '
    'covers: FP and under-trained, FP and well-trained, and the same for the ids that are not FPs.'
    ' Example: SELECT model, fp_undertrained, fp_trained, round(fp_undertrained_share, 4) AS share FROM '
    'fp_undertrained;';
COMMENT ON COLUMN fp_undertrained.model IS 'models.name';
COMMENT ON COLUMN fp_undertrained.scan_id IS 'the primary scan compared';
COMMENT ON COLUMN fp_undertrained.ids IS 'ids of the scan''s range with an indicator';
COMMENT ON COLUMN fp_undertrained.fp_undertrained IS 'FPs that are under-trained candidates';
COMMENT ON COLUMN fp_undertrained.fp_trained IS 'FPs that are not';
COMMENT ON COLUMN fp_undertrained.nonfp_undertrained IS 'non-FPs that are candidates';
COMMENT ON COLUMN fp_undertrained.nonfp_trained IS 'non-FPs that are not';
COMMENT ON COLUMN fp_undertrained.fp_undertrained_share IS 'share of FPs that are candidates';
COMMENT ON COLUMN fp_undertrained.nonfp_undertrained_share IS 'the same among non-FPs';

CREATE OR REPLACE VIEW provenance_counts AS
SELECT
    p.model, p.token_id, p.token_text, p.category, p.backend, p.index_name,
    coalesce(p.index_is_proxy, true) AS index_is_proxy, p.n, p.variant, p.query, p.role,
    CASE WHEN NOT p.queryable THEN 'not_queryable'
         WHEN c.status IS NULL THEN 'pending'
         ELSE c.status END AS status,
    c.count, c.approx, c.token_ids, c.tokens, c.latency_ms, c.queried_at,
    coalesce(p.reason, c.error) AS reason,
    coalesce(p.in_evidence, false) AS in_evidence, coalesce(p.loose, false) AS loose, p.spelling_note
FROM provenance p
LEFT JOIN ngram_counts c
  ON c.backend = p.backend AND c.index_name = p.index_name AND c.query = p.query;
COMMENT ON VIEW provenance_counts IS
    'One row per provenance entry with its count and a single status: ''ok'' | ''failed'' | ''not_queryable'' '
    '| ''pending'' (queryable but not yet asked). The statistics count the rows with in_evidence (the emitted '
    'run); loose spellings are listed again in loose_spellings.'
    ' Example: SELECT model, token_text, n, variant, count FROM provenance_counts
WHERE status = ''ok'' AND role = ''fp'' AND in_evidence ORDER BY n DESC, count DESC LIMIT 20;';
COMMENT ON COLUMN provenance_counts.model IS 'models.name (token_fps.model) (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.token_id IS 'token_fps.token_id (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.token_text IS
    'decoded text of the token (token_fps.text), before the variant is applied (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.category IS
    'token_fps.category: normal | special | byte_fragment | unreachable (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.backend IS 'ngram_counts.backend (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.index_name IS 'ngram_counts.index_name (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.index_is_proxy IS
    'true unless the index is known to be this model''s training data (its alias names it so, the local index''s '
    'manifest lists the model in training_data_of, or the run was told --training-data): a proxy, so counts '
    'describe the corpus, not the model''s data; never NULL';
COMMENT ON COLUMN provenance_counts.n IS
    'repetitions of the token text in the query (--ngram / --ladder) (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.variant IS
    'the spelling: ''emitted'' (decode([t] x n)) | ''emitted_spaced'' ('' '' + emitted) | ''space_stripped'' '
    '(loose) | ''as_is'', ''space_added'' (planned before the emitted spelling) (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.query IS
    'ngram_counts.query measuring it; NULL when not queryable (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.role IS
    '''fp'' (a fixed point of the model) | ''control'' (a matched non-FP token of the same scan) (as in '
    '`provenance`)';
COMMENT ON COLUMN provenance_counts.status IS
    '''ok'' | ''failed'' | ''not_queryable'' | ''pending'' (queryable, not yet asked)';
COMMENT ON COLUMN provenance_counts.count IS
    'occurrences of the query in the index; NULL unless status = ''ok'' (NULL until answered) (as in '
    '`ngram_counts`)';
COMMENT ON COLUMN provenance_counts.approx IS
    'the backend marked the count as approximate (NULL until answered) (as in `ngram_counts`)';
COMMENT ON COLUMN provenance_counts.token_ids IS
    'the query''s token ids as the backend tokenized it (NULL for byte/char-level backends) (NULL until '
    'answered) (as in `ngram_counts`)';
COMMENT ON COLUMN provenance_counts.tokens IS
    'the same tokens as strings (e.g. [''▁bl'', ''ah'']); NULL for byte/char-level (NULL until answered) (as '
    'in `ngram_counts`)';
COMMENT ON COLUMN provenance_counts.latency_ms IS
    'backend-reported latency (api/mini) or measured engine time (local), ms (NULL until answered) (as in '
    '`ngram_counts`)';
COMMENT ON COLUMN provenance_counts.queried_at IS
    'when the stored answer arrived (NULL until answered) (as in `ngram_counts`)';
COMMENT ON COLUMN provenance_counts.reason IS 'why the entry is not queryable, or why its query failed';
COMMENT ON COLUMN provenance_counts.in_evidence IS
    'this count is the one the statistics and flags use (the emitted run, queryable, not loose) (as in '
    '`provenance`; false for rows planned before the column)';
COMMENT ON COLUMN provenance_counts.loose IS
    'the spelling can match text that is not the token repeated; never in a statistic (as in `provenance`)';
COMMENT ON COLUMN provenance_counts.spelling_note IS
    'how the run was spelled, or why it is out of the statistics (as in `provenance`)';

CREATE OR REPLACE VIEW loose_spellings AS
SELECT model, token_id, token_text, role, backend, index_name, index_is_proxy, n, variant, query, status, count,
       spelling_note
FROM provenance_counts
WHERE loose;
COMMENT ON VIEW loose_spellings IS
    'Spellings counted but kept out of every statistic because they can match text that is not the token '
    'repeated: a run of one character (AAAAAAAAAA matches base64, mmmmmmmmmm matches "Ummmmmmmmmm"), or the text '
    'stripped of its leading space (docs/provenance.md). Their counts are upper bounds on the token''s runs.'
    ' Example: SELECT model, token_text, n, variant, count, spelling_note FROM loose_spellings ORDER BY count DESC LIMIT 20;';
COMMENT ON COLUMN loose_spellings.model IS 'models.name (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.token_id IS 'token id (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.token_text IS 'decoded text of the token (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.role IS '''fp'' | ''control'' (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.backend IS 'ngram_counts.backend (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.index_name IS 'ngram_counts.index_name (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.index_is_proxy IS
    'true unless the index is known to be this model''s training data (as in `provenance_counts`)';
COMMENT ON COLUMN loose_spellings.n IS 'repetitions (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.variant IS 'the spelling (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.query IS 'the query counted (as in `provenance`)';
COMMENT ON COLUMN loose_spellings.status IS
    '''ok'' | ''failed'' | ''not_queryable'' | ''pending'' (as in `provenance_counts`)';
COMMENT ON COLUMN loose_spellings.count IS 'occurrences of the query; NULL unless status = ''ok'' (as in `ngram_counts`)';
COMMENT ON COLUMN loose_spellings.spelling_note IS 'why the spelling is loose (as in `provenance`)';

CREATE OR REPLACE VIEW source_shares AS
WITH matches AS (
    SELECT DISTINCT backend, index_name, query, shard, rank, coalesce(source, '(unknown)') AS source
    FROM documents WHERE status = 'ok'
), per_source AS (
    SELECT backend, index_name, query, source, count(*) AS docs
    FROM matches GROUP BY ALL
)
SELECT
    p.model, p.token_id, p.token_text, p.backend, p.index_name, coalesce(p.index_is_proxy, true) AS index_is_proxy,
    p.n, p.variant, p.query, p.role, s.source,
    s.docs,
    sum(s.docs) OVER (PARTITION BY p.model, p.token_id, p.backend, p.index_name, p.n, p.variant) AS sampled,
    s.docs / sum(s.docs) OVER (PARTITION BY p.model, p.token_id, p.backend, p.index_name, p.n, p.variant) AS share
FROM provenance p
JOIN per_source s
  ON s.backend = p.backend AND s.index_name = p.index_name AND s.query = p.query;
COMMENT ON VIEW source_shares IS
    'Share of each source among the sampled documents of each provenance entry (all seeds, distinct matches).'
    ' Example: SELECT token_text, source, round(100 * share) AS pct FROM source_shares
WHERE model = ''olmo2-13b-inst'' AND n = 10 AND role = ''fp'' ORDER BY token_text, share DESC;';
COMMENT ON COLUMN source_shares.model IS 'models.name (token_fps.model) (as in `provenance`)';
COMMENT ON COLUMN source_shares.token_id IS 'token_fps.token_id (as in `provenance`)';
COMMENT ON COLUMN source_shares.token_text IS
    'decoded text of the token (token_fps.text), before the variant is applied (as in `provenance`)';
COMMENT ON COLUMN source_shares.backend IS 'ngram_counts.backend (as in `provenance`)';
COMMENT ON COLUMN source_shares.index_name IS 'ngram_counts.index_name (as in `provenance`)';
COMMENT ON COLUMN source_shares.index_is_proxy IS
    'true unless the index is known to be this model''s training data (its alias names it so, the local index''s '
    'manifest lists the model in training_data_of, or the run was told --training-data): a proxy, so counts '
    'describe the corpus, not the model''s data; never NULL';
COMMENT ON COLUMN source_shares.n IS
    'repetitions of the token text in the query (--ngram / --ladder) (as in `provenance`)';
COMMENT ON COLUMN source_shares.variant IS
    '''as_is'' (decoded text) | ''space_added'' ('' '' + text) | ''space_stripped'' (text without its leading '
    'space) (as in `provenance`)';
COMMENT ON COLUMN source_shares.query IS
    'ngram_counts.query measuring it; NULL when not queryable (as in `provenance`)';
COMMENT ON COLUMN source_shares.role IS
    '''fp'' (a fixed point of the model) | ''control'' (a matched non-FP token of the same scan) (as in '
    '`provenance`)';
COMMENT ON COLUMN source_shares.source IS
    'the documents'' source, ''(unknown)'' when their metadata names none';
COMMENT ON COLUMN source_shares.docs IS 'sampled documents from this source';
COMMENT ON COLUMN source_shares.sampled IS 'all sampled matches of the entry''s query';
COMMENT ON COLUMN source_shares.share IS 'docs / sampled';

CREATE OR REPLACE VIEW traced_indexes AS
SELECT model, backend, index_name, coalesce(bool_or(coalesce(index_is_proxy, true)), true) AS index_is_proxy,
       CASE WHEN coalesce(bool_or(coalesce(index_is_proxy, true)), true)
            THEN index_name || ' (proxy: not this model''s training data)'
            ELSE index_name || ' (this model''s training data)' END AS corpus_label,
       count(DISTINCT token_id) FILTER (WHERE role = 'fp') AS fps,
       count(DISTINCT token_id) FILTER (WHERE role = 'control') AS controls
FROM provenance
GROUP BY model, backend, index_name;
COMMENT ON VIEW traced_indexes IS
    'One row per (model, index) traced: whether the index is a proxy or the model''s own training data, and the '
    'label every page uses for it.'
    ' Example: SELECT model, corpus_label, fps, controls FROM traced_indexes ORDER BY model;';
COMMENT ON COLUMN traced_indexes.model IS 'models.name (as in `provenance`)';
COMMENT ON COLUMN traced_indexes.backend IS 'ngram_counts.backend (as in `provenance`)';
COMMENT ON COLUMN traced_indexes.index_name IS 'ngram_counts.index_name (as in `provenance`)';
COMMENT ON COLUMN traced_indexes.index_is_proxy IS
    'true unless the index is known to be this model''s training data (provenance.index_is_proxy); never NULL';
COMMENT ON COLUMN traced_indexes.corpus_label IS
    '''<index> (proxy: not this model''''s training data)'' or ''<index> (this model''''s training data)''';
COMMENT ON COLUMN traced_indexes.fps IS 'FP tokens planned in this index';
COMMENT ON COLUMN traced_indexes.controls IS 'control tokens planned in this index';

CREATE OR REPLACE VIEW corpus_baselines AS
SELECT backend, index_name, seed, coalesce(source, '(unknown)') AS source, count(*) AS positions,
       sum(count(*)) OVER (PARTITION BY backend, index_name, seed) AS total,
       count(*) / sum(count(*)) OVER (PARTITION BY backend, index_name, seed) AS share
FROM baseline_positions WHERE status = 'ok'
GROUP BY backend, index_name, seed, coalesce(source, '(unknown)');
COMMENT ON VIEW corpus_baselines IS
    'Each source''s share of an index, estimated from its random positions, with a 95% Wilson CI.'
    ' Example: SELECT source, positions, round(share, 3) AS share FROM corpus_baselines ORDER BY share DESC;';
COMMENT ON COLUMN corpus_baselines.backend IS 'ngram_counts.backend (as in `baseline_positions`)';
COMMENT ON COLUMN corpus_baselines.index_name IS 'ngram_counts.index_name (as in `baseline_positions`)';
COMMENT ON COLUMN corpus_baselines.seed IS 'sampling seed (as in `baseline_positions`)';
COMMENT ON COLUMN corpus_baselines.source IS 'the source, ''(unknown)'' when the document names none';
COMMENT ON COLUMN corpus_baselines.positions IS 'positions that fell in its documents';
COMMENT ON COLUMN corpus_baselines.total IS 'positions looked up';
COMMENT ON COLUMN corpus_baselines.share IS 'positions / total';

CREATE OR REPLACE VIEW corpus_attribution AS
SELECT model, backend, index_name, n_fp, n_control, auc, auc_low, auc_high,
       row_number() OVER (PARTITION BY model ORDER BY auc DESC NULLS LAST, auc_low DESC NULLS LAST, index_name) AS rank
FROM fp_enrichment;
COMMENT ON VIEW corpus_attribution IS
    'Which index looks most like each model''s training data: indexes ranked by FP-vs-control AUC.'
    ' Example: SELECT model, rank, index_name, round(auc, 3) AS auc, round(auc_low, 3) AS lo FROM '
    'corpus_attribution ORDER BY model, rank;';
COMMENT ON COLUMN corpus_attribution.model IS 'models.name (as in `fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.backend IS 'ngram_counts.backend (as in `fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.index_name IS 'ngram_counts.index_name (as in `fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.n_fp IS 'FPs compared (with a rate and a control) (as in `fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.n_control IS 'controls compared (as in `fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.auc IS
    'P(FP rate > control rate) + P(tie) / 2: Mann-Whitney U / (n_fp n_control), ties counted half (as in '
    '`fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.auc_low IS
    '95% bootstrap CI of the AUC, lower end (as in `fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.auc_high IS 'upper end (as in `fp_enrichment`)';
COMMENT ON COLUMN corpus_attribution.rank IS '1 for the index with the highest AUC';

CREATE OR REPLACE VIEW source_rule_hits AS
    -- The token rule, applied to FPs and controls alike (so the controls' flag rate can be shown): one source's
    -- share among the token's documents over its corpus share (CI lower end >= threshold), above the controls'
    -- pooled share of that source, and the source specific to FPs (source_contrast: Fisher, BH q <= 0.05, odds
    -- ratio CI above 1), or no control's run sampled at all (nothing the controls show to exceed).
    SELECT s.model, s.backend, s.index_name, s.token_id, s.role, s.source, s.enrichment, s.enrichment_low,
           s.enrichment_high, s.share, s.share_low, s.sampled, s.baseline_share, c.odds_ratio, c.or_low, c.or_high,
           c.q_value AS contrast_q, c.control_docs, c.control_sampled
    FROM source_enrichment s
    JOIN source_contrast c USING (model, backend, index_name, source)
    JOIN suspicion_thresholds th ON th.rule = 'source_enriched'
    WHERE s.scope = 'token' AND s.source <> '(unknown)'
      AND s.enrichment_low >= th.threshold AND s.sampled >= coalesce(th.min_support, 0)
      AND (c.control_sampled = 0 OR (c.q_value <= 0.05 AND c.or_low > 1))
      AND s.share_low > coalesce(c.control_docs / nullif(c.control_sampled, 0), 0);
COMMENT ON VIEW source_rule_hits IS
    'The source_enriched condition per token and source, applied to FPs and matched controls alike: the one '
    'definition that suspicious_tokens (FPs), its controls'' flag rate and the validation study read.'
    ' Example: SELECT model, index_name, role, count(DISTINCT token_id) AS tokens FROM source_rule_hits GROUP BY ALL;';
COMMENT ON COLUMN source_rule_hits.model IS 'models.name';
COMMENT ON COLUMN source_rule_hits.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN source_rule_hits.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN source_rule_hits.token_id IS 'the token';
COMMENT ON COLUMN source_rule_hits.role IS '''fp'' | ''control''';
COMMENT ON COLUMN source_rule_hits.source IS 'the source the condition holds for';
COMMENT ON COLUMN source_rule_hits.enrichment IS 'the source''s share among the token''s documents over its corpus share (source_enrichment)';
COMMENT ON COLUMN source_rule_hits.enrichment_low IS '95% CI of enrichment, lower end (>= the rule''s threshold here)';
COMMENT ON COLUMN source_rule_hits.enrichment_high IS 'upper end';
COMMENT ON COLUMN source_rule_hits.share IS 'the source''s share among the token''s sampled documents';
COMMENT ON COLUMN source_rule_hits.share_low IS '95% Wilson CI of share, lower end (above the controls'' pooled share)';
COMMENT ON COLUMN source_rule_hits.sampled IS 'documents sampled for the token (>= the rule''s min_support)';
COMMENT ON COLUMN source_rule_hits.baseline_share IS 'the source''s share of the corpus (source_enrichment)';
COMMENT ON COLUMN source_rule_hits.odds_ratio IS 'FP documents vs matched controls'' documents from this source (source_contrast)';
COMMENT ON COLUMN source_rule_hits.or_low IS '95% CI of odds_ratio, lower end (source_contrast)';
COMMENT ON COLUMN source_rule_hits.or_high IS 'upper end';
COMMENT ON COLUMN source_rule_hits.contrast_q IS 'BH q of the source''s FP-vs-control contrast (source_contrast.q_value)';
COMMENT ON COLUMN source_rule_hits.control_docs IS 'controls'' sampled documents from this source';
COMMENT ON COLUMN source_rule_hits.control_sampled IS 'controls'' sampled documents in all (0: no control''s run was sampled)';

CREATE OR REPLACE VIEW flag_rates AS
-- Per (model, index, rule): tokens with any n-fold run and how many of them the rule flags, FPs and controls side
-- by side (repetition_enriched is defined for FPs only), whether or not the rule fired at all.
WITH hits AS (
    SELECT DISTINCT model, backend, index_name, token_id, role FROM source_rule_hits
), marked AS (
    SELECT e.model, e.backend, e.index_name, e.role, e.repeat_count, e.q_value, h.token_id IS NOT NULL AS source_hit
    FROM token_evidence e
    LEFT JOIN hits h USING (model, backend, index_name, token_id, role)
)
SELECT m.model, m.backend, m.index_name, th.rule,
       count(*) FILTER (WHERE m.role = 'fp' AND m.repeat_count > 0) AS fp_with_runs,
       count(*) FILTER (WHERE m.role = 'fp' AND CASE th.rule WHEN 'source_enriched' THEN m.source_hit
                                                             ELSE m.q_value <= th.threshold END) AS fp_flagged,
       count(*) FILTER (WHERE m.role = 'control' AND m.repeat_count > 0) AS control_with_runs,
       CASE th.rule WHEN 'source_enriched' THEN count(*) FILTER (WHERE m.role = 'control' AND m.source_hit) END
           AS control_flagged
FROM marked m
CROSS JOIN suspicion_thresholds th
WHERE th.rule IN ('repetition_enriched', 'source_enriched')
GROUP BY m.model, m.backend, m.index_name, th.rule, th.threshold;
COMMENT ON VIEW flag_rates IS
    'Per (model, index, rule): the tokens with any n-fold run and how many of them the rule flags, FPs beside their '
    'matched controls, also where the rule flags nothing (a rule that flags controls as often as FPs singles out '
    'nothing).'
    ' Example: SELECT model, index_name, rule, fp_flagged, fp_with_runs, control_flagged, control_with_runs FROM flag_rates;';
COMMENT ON COLUMN flag_rates.model IS 'models.name';
COMMENT ON COLUMN flag_rates.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN flag_rates.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN flag_rates.rule IS 'suspicion_thresholds.rule';
COMMENT ON COLUMN flag_rates.fp_with_runs IS 'FPs compared in that index whose emitted run occurs at all (token_evidence.repeat_count > 0)';
COMMENT ON COLUMN flag_rates.fp_flagged IS 'FPs the rule flags there';
COMMENT ON COLUMN flag_rates.control_with_runs IS 'matched controls there with repeat_count > 0';
COMMENT ON COLUMN flag_rates.control_flagged IS
    'controls the rule would flag (source_enriched: source_rule_hits; NULL for repetition_enriched, defined for FPs only)';

CREATE OR REPLACE VIEW suspicious_tokens AS
WITH th AS (
    SELECT * FROM suspicion_thresholds
), repetition AS (
    SELECT e.model, e.backend, e.index_name, e.token_id, 'repetition_enriched' AS rule, e.q_value AS value,
           format('repetition rate {:.3g} (count x{} / count = {:,} / {:,}) beats {:.0f}% of {} matched controls (95% CI {:.0f}-{:.0f}%), q = {:.2g}, in {}',
                  e.rate, r.n, e.repeat_count, e.unigram_count, e.percentile, e.n_bin_controls,
                  e.percentile_low, e.percentile_high, e.q_value, e.index_name) AS evidence,
           log10(greatest(th.threshold, 1e-300) / greatest(e.q_value, 1e-300)) / 3 AS strength
    FROM token_evidence e
    JOIN evidence_runs r USING (model, backend, index_name)
    JOIN th ON th.rule = 'repetition_enriched'
    WHERE e.role = 'fp' AND e.q_value <= th.threshold
), source_hits AS (
    SELECT * FROM source_rule_hits
), source AS (
    SELECT s.model, s.backend, s.index_name, s.token_id, 'source_enriched' AS rule, s.enrichment_low AS value,
           format('{} is {:.1f}x its corpus share ({:.1f}% of {} sampled documents vs {:.2f}%; 95% CI {:.1f}-{:.1f}x) {}, in {}',
                  to_json(s.source)::VARCHAR, s.enrichment, 100 * s.share, s.sampled, 100 * s.baseline_share,
                  s.enrichment_low, s.enrichment_high,
                  CASE WHEN s.control_sampled = 0 THEN 'and no matched control''s run was sampled'
                       ELSE format('and FPs'' documents come from it more than their matched controls'' (odds ratio {:.1f}, 95% CI {:.1f}-{:.1f}; controls {} of {} documents)',
                                   s.odds_ratio, s.or_low, s.or_high, s.control_docs, s.control_sampled) END,
                  s.index_name) AS evidence,
           ln(s.enrichment_low / greatest(th.threshold, 1e-12)) AS strength
    FROM source_hits s
    JOIN th ON th.rule = 'source_enriched'
    WHERE s.role = 'fp'
), rates AS (
    SELECT model, backend, index_name,
           any_value(fp_with_runs) AS fp_with_runs, any_value(control_with_runs) AS control_with_runs,
           any_value(fp_flagged) FILTER (WHERE rule = 'source_enriched') AS fp_source_flagged,
           any_value(control_flagged) FILTER (WHERE rule = 'source_enriched') AS control_source_flagged,
           any_value(fp_flagged) FILTER (WHERE rule = 'repetition_enriched') AS fp_repetition_flagged
    FROM flag_rates GROUP BY ALL
), fired AS (
    SELECT fl.*, th.threshold, th.weight FROM (
        SELECT * FROM repetition
        QUALIFY row_number() OVER (PARTITION BY model, token_id ORDER BY value, index_name) = 1
        UNION ALL
        SELECT * FROM source
        QUALIFY row_number() OVER (PARTITION BY model, token_id ORDER BY value DESC, index_name, evidence) = 1) fl
    JOIN th ON th.rule = fl.rule
)
SELECT
    f.model, f.token_id, t.raw_token, t.text, t.norm_text, t.prob, t.prob >= 0.99 AS prob_near_one, t.family,
    f.rule, f.threshold, f.value,
    f.evidence || format(' (threshold {:g})', f.threshold) AS reason,
    greatest(0, f.strength) AS strength,
    f.weight * (1 + greatest(0, f.strength)) AS contribution,
    sum(f.weight * (1 + greatest(0, f.strength))) OVER (PARTITION BY f.model, f.token_id) AS score,
    count(*) OVER (PARTITION BY f.model, f.token_id) AS n_rules,
    f.backend, f.index_name, coalesce(ix.index_is_proxy, true) AS index_is_proxy,
    r.fp_with_runs,
    CASE f.rule WHEN 'source_enriched' THEN r.fp_source_flagged ELSE r.fp_repetition_flagged END AS fp_flagged,
    CASE f.rule WHEN 'source_enriched' THEN r.fp_source_flagged ELSE r.fp_repetition_flagged END
        / nullif(r.fp_with_runs, 0) AS fp_flag_rate,
    r.control_with_runs,
    CASE f.rule WHEN 'source_enriched' THEN r.control_source_flagged END AS control_flagged,
    CASE f.rule WHEN 'source_enriched' THEN r.control_source_flagged / nullif(r.control_with_runs, 0) END
        AS control_flag_rate
FROM fired f
JOIN primary_fps t ON t.model = f.model AND t.token_id = f.token_id
LEFT JOIN rates r ON r.model = f.model AND r.backend = f.backend AND r.index_name = f.index_name
LEFT JOIN traced_indexes ix ON ix.model = f.model AND ix.backend = f.backend AND ix.index_name = f.index_name;
COMMENT ON VIEW suspicious_tokens IS
    'Every flag raised, one row per (model, token, rule), over every index the token was traced in (the '
    'strongest evidence per rule), with the controls'' flag rate under the same rule beside the FPs''. `value` is q '
    '(repetition_enriched) or the CI''s lower end (source_enriched).'
    ' Example: SELECT model, text, rule, reason, score FROM suspicious_tokens ORDER BY score DESC LIMIT 20;';
COMMENT ON COLUMN suspicious_tokens.model IS 'models.name (as in `primary_fps`)';
COMMENT ON COLUMN suspicious_tokens.token_id IS 'the token''s vocabulary id (as in `primary_fps`)';
COMMENT ON COLUMN suspicious_tokens.raw_token IS
    'the vocabulary string (e.g. ''Ġblah'', ''▁blah'', ''<0xC3>'') (as in `primary_fps`)';
COMMENT ON COLUMN suspicious_tokens.text IS 'decoded text of the single token (as in `primary_fps`)';
COMMENT ON COLUMN suspicious_tokens.norm_text IS
    'text for matching across tokenizers: leading-space markers (Ġ, ▁) as a space, Unicode NFC (as in '
    '`primary_fps`)';
COMMENT ON COLUMN suspicious_tokens.prob IS
    'softmax probability of the token itself for the input [t] (as in `primary_fps`)';
COMMENT ON COLUMN suspicious_tokens.prob_near_one IS
    'p(t | t) >= 0.99, a property of the model, not of its data';
COMMENT ON COLUMN suspicious_tokens.family IS
    'the model''s family; the model''s own name when unknown (as in `primary_fps`)';
COMMENT ON COLUMN suspicious_tokens.rule IS 'the rule that fired (suspicion_thresholds.rule)';
COMMENT ON COLUMN suspicious_tokens.threshold IS 'the threshold in force';
COMMENT ON COLUMN suspicious_tokens.value IS
    'what the rule measured (q for repetition_enriched, the CI''s lower end for source_enriched)';
COMMENT ON COLUMN suspicious_tokens.reason IS 'one readable sentence with the effect size, its CI and n';
COMMENT ON COLUMN suspicious_tokens.strength IS
    'how far past the threshold the evidence is, 0 at the threshold and unbounded (no cap, so flags order by their '
    'evidence): ln(CI lower end / threshold) for source_enriched, log10(threshold / q) / 3 for repetition_enriched';
COMMENT ON COLUMN suspicious_tokens.backend IS 'ngram_counts.backend of the index the evidence comes from';
COMMENT ON COLUMN suspicious_tokens.index_name IS 'the index the evidence comes from';
COMMENT ON COLUMN suspicious_tokens.index_is_proxy IS
    'that index is a proxy, not this model''s training data (traced_indexes.index_is_proxy)';
COMMENT ON COLUMN suspicious_tokens.fp_with_runs IS
    'FPs of the model in that index whose text repeated n times occurs at all (token_evidence.repeat_count > 0)';
COMMENT ON COLUMN suspicious_tokens.fp_flagged IS 'how many of those FPs the same rule flags in that index';
COMMENT ON COLUMN suspicious_tokens.fp_flag_rate IS 'fp_flagged / fp_with_runs';
COMMENT ON COLUMN suspicious_tokens.control_with_runs IS 'the same for the matched controls';
COMMENT ON COLUMN suspicious_tokens.control_flagged IS
    'controls the same rule would flag (source_enriched; NULL for repetition_enriched, defined for FPs only)';
COMMENT ON COLUMN suspicious_tokens.control_flag_rate IS
    'control_flagged / control_with_runs: a rule that flags controls as often as FPs singles out nothing';
COMMENT ON COLUMN suspicious_tokens.contribution IS 'weight * (1 + strength)';
COMMENT ON COLUMN suspicious_tokens.score IS 'the token''s total, the sum of its contributions';
COMMENT ON COLUMN suspicious_tokens.n_rules IS 'rules the token broke';

CREATE OR REPLACE VIEW token_suspicion AS
SELECT
    model, token_id, any_value(raw_token) AS raw_token, any_value(text) AS text,
    any_value(norm_text) AS norm_text, any_value(prob) AS prob, any_value(prob_near_one) AS prob_near_one,
    any_value(family) AS family, any_value(score) AS score,
    count(*) AS n_rules,
    list(rule ORDER BY contribution DESC, rule) AS rules,
    list(reason ORDER BY contribution DESC, rule) AS reasons
FROM suspicious_tokens
GROUP BY model, token_id;
COMMENT ON VIEW token_suspicion IS
    'One row per flagged token: its score, the rules it broke and their reasons, best first.'
    ' Example: SELECT model, text, round(score, 2) AS score, rules FROM token_suspicion ORDER BY score DESC '
    'LIMIT 20;';
COMMENT ON COLUMN token_suspicion.model IS 'models.name (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.token_id IS 'the token''s vocabulary id (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.raw_token IS
    'the vocabulary string (e.g. ''Ġblah'', ''▁blah'', ''<0xC3>'') (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.text IS 'decoded text of the single token (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.norm_text IS
    'text for matching across tokenizers: leading-space markers (Ġ, ▁) as a space, Unicode NFC (as in '
    '`suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.prob IS
    'softmax probability of the token itself for the input [t] (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.prob_near_one IS
    'p(t | t) >= 0.99, a property of the model, not of its data (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.family IS
    'the model''s family; the model''s own name when unknown (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.score IS
    'the token''s total, the sum of its contributions (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.n_rules IS 'rules the token broke (as in `suspicious_tokens`)';
COMMENT ON COLUMN token_suspicion.rules IS 'the rules it broke and their reasons, largest contribution first';
COMMENT ON COLUMN token_suspicion.reasons IS 'the rules it broke and their reasons, largest contribution first';

CREATE OR REPLACE VIEW fp_guarantees AS
SELECT
    f.scan_id, f.model, f.token_id, f.text, s.dtype, s.verify, f.decided_in,
    CASE WHEN f.verified_float64 THEN 'float64'
         WHEN s.verify = 'calibrated' OR f.decided_in IN ('bfloat16', 'float16') THEN 'calibrated'
         ELSE 'tolerance' END AS guarantee,
    s.calibration_threshold
FROM token_fps f
JOIN scans s USING (scan_id);
COMMENT ON VIEW fp_guarantees IS
    'What each stored FP verdict guarantees. float64: re-checked one token at a time in float64, the exact '
    'verdict of the weights as loaded. calibrated: not re-checked; its margin in the precision decided_in lies '
    'beyond the threshold calibrated on the scan''s own sample (max(safety factor x the error measured against '
    'float64, the sample''s bound)): trusted, not proven. tolerance: not re-checked; its margin exceeds the '
    'relative --tolerance only (--verify near).'
    ' Example: SELECT guarantee, count(*) FROM fp_guarantees GROUP BY ALL;';
COMMENT ON COLUMN fp_guarantees.scan_id IS 'scans.scan_id';
COMMENT ON COLUMN fp_guarantees.model IS 'models.name';
COMMENT ON COLUMN fp_guarantees.token_id IS 'the token''s vocabulary id';
COMMENT ON COLUMN fp_guarantees.text IS 'decoded text of the single token';
COMMENT ON COLUMN fp_guarantees.dtype IS 'the scan''s dtype (as in `scans`)';
COMMENT ON COLUMN fp_guarantees.verify IS 'the scan''s verify mode (as in `scans`)';
COMMENT ON COLUMN fp_guarantees.decided_in IS 'the precision whose computation made the verdict (as in `token_fps`)';
COMMENT ON COLUMN fp_guarantees.guarantee IS 'float64 | calibrated | tolerance: what the verdict guarantees (see the view)';
COMMENT ON COLUMN fp_guarantees.calibration_threshold IS
    'the scan''s calibrated threshold (as in `scans`); NULL when the scan has none';

-- validation_* views (issue 24, `fpprov validate`; tables in migrations/015_validation.sql)
CREATE OR REPLACE VIEW validation_confusion AS
SELECT a.study_id, a.organism, o.mixture_name, a.index_organism AS top_index_organism,
       t.mixture_name AS top_index_mixture, a.relation AS top_relation, a.is_own AS correct,
       o.mixture_name = t.mixture_name AS mixture_correct, a.tied_with_next, a.auc, a.auc_low, a.auc_high
FROM validation_attribution a
JOIN validation_organisms o ON o.study_id = a.study_id AND o.organism = a.organism
JOIN validation_organisms t ON t.study_id = a.study_id AND t.organism = a.index_organism
WHERE a.rank = 1;
COMMENT ON VIEW validation_confusion IS
    'The attribution confusion matrix of a validation study in long form: for each organism (the truth), the '
    'organism whose index ranked first (the call), right or wrong, and whether the call was tied with the runner-up.'
    ' Example: SELECT organism, top_index_organism, correct, mixture_correct, tied_with_next FROM validation_confusion ORDER BY organism;';
COMMENT ON COLUMN validation_confusion.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_confusion.organism IS 'the traced organism (the truth: its own corpus)';
COMMENT ON COLUMN validation_confusion.mixture_name IS 'its training mixture';
COMMENT ON COLUMN validation_confusion.top_index_organism IS 'the organism whose corpus ranked first';
COMMENT ON COLUMN validation_confusion.top_index_mixture IS 'that corpus''s mixture';
COMMENT ON COLUMN validation_confusion.top_relation IS 'own | same_mixture | shares_sources | unseen (validation_attribution.relation)';
COMMENT ON COLUMN validation_confusion.correct IS 'the organism''s own corpus ranked first';
COMMENT ON COLUMN validation_confusion.mixture_correct IS 'a corpus of its own mixture ranked first (the sources right, the plants aside)';
COMMENT ON COLUMN validation_confusion.tied_with_next IS 'the first and second AUC CIs overlap (validation_attribution.tied_with_next)';
COMMENT ON COLUMN validation_confusion.auc IS 'the first index''s AUC';
COMMENT ON COLUMN validation_confusion.auc_low IS '95% CI, lower end';
COMMENT ON COLUMN validation_confusion.auc_high IS 'upper end';

CREATE OR REPLACE VIEW validation_shared_fps AS
WITH org AS (
    SELECT study_id, organism, model FROM validation_organisms
), fps AS (
    SELECT o.study_id, o.organism, f.norm_text
    FROM org o JOIN primary_fps f ON f.model = o.model
    WHERE f.norm_text IS NOT NULL AND f.norm_text <> '' AND NOT contains(f.norm_text, chr(65533))
    GROUP BY ALL
), planted AS (
    SELECT study_id, word, list(DISTINCT organism ORDER BY organism) FILTER (WHERE role = 'planted' AND dose > 0) AS planted_in,
           bool_or(role = 'twin') AS is_twin
    FROM validation_tokens GROUP BY ALL
)
SELECT f.study_id, f.norm_text, count(*) AS n_organisms, list(f.organism ORDER BY f.organism) AS organisms,
       coalesce(len(any_value(p.planted_in)), 0) AS n_planted_in, any_value(p.planted_in) AS planted_in,
       CASE WHEN coalesce(len(any_value(p.planted_in)), 0) >= 2 THEN 'planted in several'
            WHEN coalesce(len(any_value(p.planted_in)), 0) = 1 THEN 'planted in one'
            WHEN coalesce(any_value(p.is_twin), false) THEN 'twin'
            ELSE 'natural' END AS explanation
FROM fps f
LEFT JOIN planted p ON p.study_id = f.study_id AND p.word = f.norm_text
GROUP BY f.study_id, f.norm_text
HAVING count(*) >= 2;
COMMENT ON VIEW validation_shared_fps IS
    'FP texts two or more organisms of a study share, each explained: planted into several of them, planted into '
    'one (the others learnt it from shared text), a twin, or natural (repetition in shared sources).'
    ' Example: SELECT norm_text, n_organisms, organisms, explanation FROM validation_shared_fps ORDER BY n_organisms DESC;';
COMMENT ON COLUMN validation_shared_fps.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_shared_fps.norm_text IS 'the shared FP text (primary_fps.norm_text)';
COMMENT ON COLUMN validation_shared_fps.n_organisms IS 'organisms of the study with it as an FP';
COMMENT ON COLUMN validation_shared_fps.organisms IS 'which (sorted)';
COMMENT ON COLUMN validation_shared_fps.n_planted_in IS 'organisms it was planted into (dose > 0)';
COMMENT ON COLUMN validation_shared_fps.planted_in IS 'which; NULL when none';
COMMENT ON COLUMN validation_shared_fps.explanation IS
    '''planted in several'' | ''planted in one'' | ''twin'' | ''natural'' (neither planted nor a twin)';
