-- Evidence behind every provenance claim: FP tokens against matched non-FP controls of the same scan, the
-- sources of their documents against each source's share of the whole corpus, with effect sizes, 95%
-- confidence intervals and n; flags rebuilt on that evidence. Formulas and assumptions: docs/provenance.md.

-- Every scanned id's text and category (the scan writes them with each committed chunk): the pool matched
-- controls are drawn from, since token_fps holds the FPs only.
-- Example: SELECT category, count(*) FROM vocabulary WHERE model = 'gemma3-270m' GROUP BY ALL;
CREATE TABLE vocabulary (
    model           VARCHAR NOT NULL,      -- models.name
    token_id        INTEGER NOT NULL,      -- token id
    raw_token       VARCHAR,               -- the vocabulary string (e.g. 'Ġblah', '▁blah', '<0xC3>')
    text            VARCHAR,               -- decoded text of the single token
    norm_text       VARCHAR,               -- text for cross-model matching: leading-space markers -> ' ', NFC
    category        VARCHAR NOT NULL,      -- normal | special | byte_fragment | unreachable
    PRIMARY KEY (model, token_id)
);

-- Provenance rows are FPs or their controls.
ALTER TABLE provenance ADD COLUMN role VARCHAR DEFAULT 'fp';  -- 'fp' (a fixed point of the model) | 'control' (a matched non-FP token of the same scan)

-- The views over provenance rows, dropped with the flag views that read them and made again with the role.
DROP VIEW token_suspicion;
DROP VIEW suspicious_tokens;
DROP VIEW source_shares;
DROP VIEW provenance_counts;

-- One row per provenance entry with its count and a single status:
-- 'ok' | 'failed' | 'not_queryable' | 'pending' (queryable but not yet asked).
-- Example: SELECT model, token_text, n, variant, count FROM provenance_counts
--          WHERE status = 'ok' AND role = 'fp' ORDER BY count DESC LIMIT 20;
-- Columns:
--   model, token_id, token_text, category, backend, index_name, index_is_proxy, n, variant, query, role: as in
--       `provenance`
--   status: 'ok' | 'failed' | 'not_queryable' | 'pending' (queryable, not yet asked)
--   count, approx, token_ids, tokens, latency_ms, queried_at: as in `ngram_counts` (NULL until answered)
--   reason: why the entry is not queryable, or why its query failed
CREATE VIEW provenance_counts AS
SELECT
    p.model, p.token_id, p.token_text, p.category, p.backend, p.index_name, p.index_is_proxy,
    p.n, p.variant, p.query, p.role,
    CASE WHEN NOT p.queryable THEN 'not_queryable'
         WHEN c.status IS NULL THEN 'pending'
         ELSE c.status END AS status,
    c.count, c.approx, c.token_ids, c.tokens, c.latency_ms, c.queried_at,
    coalesce(p.reason, c.error) AS reason
FROM provenance p
LEFT JOIN ngram_counts c
  ON c.backend = p.backend AND c.index_name = p.index_name AND c.query = p.query;

-- Share of each source among the sampled documents of each provenance entry (all seeds, distinct matches).
-- Example: SELECT token_text, source, round(100 * share) AS pct FROM source_shares
--          WHERE model = 'olmo2-13b-inst' AND n = 10 AND role = 'fp' ORDER BY token_text, share DESC;
-- Columns:
--   model, token_id, token_text, backend, index_name, index_is_proxy, n, variant, query, role: as in `provenance`
--   source: the documents' source, '(unknown)' when their metadata names none
--   docs: sampled documents from this source
--   sampled: all sampled matches of the entry's query
--   share: docs / sampled
CREATE VIEW source_shares AS
WITH matches AS (
    SELECT DISTINCT backend, index_name, query, shard, rank, coalesce(source, '(unknown)') AS source
    FROM documents WHERE status = 'ok'
), per_source AS (
    SELECT backend, index_name, query, source, count(*) AS docs
    FROM matches GROUP BY ALL
)
SELECT
    p.model, p.token_id, p.token_text, p.backend, p.index_name, p.index_is_proxy, p.n, p.variant, p.query, p.role,
    s.source,
    s.docs,
    sum(s.docs) OVER (PARTITION BY p.model, p.token_id, p.backend, p.index_name, p.n, p.variant) AS sampled,
    s.docs / sum(s.docs) OVER (PARTITION BY p.model, p.token_id, p.backend, p.index_name, p.n, p.variant) AS share
FROM provenance p
JOIN per_source s
  ON s.backend = p.backend AND s.index_name = p.index_name AND s.query = p.query;

-- One row per (model, backend, index): the settings of the newest evidence computed for it.
-- Example: SELECT model, index_name, fp_total, fp_sampled, sample_rule, controls_k FROM evidence_runs;
CREATE TABLE evidence_runs (
    model           VARCHAR NOT NULL,      -- models.name
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    n               INTEGER NOT NULL,      -- repetitions the rate is measured at (the run's largest n)
    measure         VARCHAR NOT NULL,      -- the per-token statistic: '(count(t x n) / count(t)) ^ (1 / (n - 1))', the geometric mean chance that one more copy follows
    controls_k      INTEGER NOT NULL,      -- controls drawn per FP (--controls)
    bin_width       DOUBLE NOT NULL,       -- width of the frequency bins on log10(unigram count + 1)
    seed            INTEGER NOT NULL,      -- --seed: token sample, controls, bootstrap and baseline positions
    fp_total        INTEGER NOT NULL,      -- FPs of the model's primary scan
    fp_sampled      INTEGER NOT NULL,      -- FPs taken into the run (all, or the --max-tokens sample)
    sample_rule     VARCHAR NOT NULL,      -- how they were taken, e.g. 'all' or 'top 50 by p(t | t) + 50 uniform of the rest'
    baseline_positions INTEGER NOT NULL,   -- random corpus positions behind the source baseline (--baseline-positions)
    computed_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when
    PRIMARY KEY (model, backend, index_name)
);

-- Each FP's controls: non-FP tokens of the same scan in the FP's frequency bin and category.
-- Example: SELECT fp_token_id, control_token_id, bin, fp_count, control_count FROM control_matches WHERE model = 'gemma3-270m' LIMIT 10;
CREATE TABLE control_matches (
    model           VARCHAR NOT NULL,      -- models.name
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    fp_token_id     INTEGER NOT NULL,      -- the FP
    draw            INTEGER NOT NULL,      -- 0 .. controls_k - 1: the control's place among the FP's controls
    control_token_id INTEGER NOT NULL,     -- the matched non-FP token
    bin             INTEGER NOT NULL,      -- floor(log10(unigram count + 1) / bin_width), shared by both
    category        VARCHAR NOT NULL,      -- token category, shared by both
    fp_count        BIGINT NOT NULL,       -- the FP's unigram count (its text once) in the index
    control_count   BIGINT NOT NULL,       -- the control's unigram count
    PRIMARY KEY (model, backend, index_name, fp_token_id, draw)
);

-- Tokens kept out of the comparison, and why: an FP whose text never occurs, one without a control in its
-- bin, a token without a text form, or one whose count query failed (never stored as a 0).
-- Example: SELECT reason, count(*) FROM evidence_exclusions GROUP BY ALL;
CREATE TABLE evidence_exclusions (
    model           VARCHAR NOT NULL,      -- models.name
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    token_id        INTEGER NOT NULL,      -- the token left out
    role            VARCHAR NOT NULL,      -- 'fp' | 'control'
    reason          VARCHAR NOT NULL,      -- 'zero_unigram_count' | 'no_control_in_bin' | 'not_queryable' | 'count_failed'
    PRIMARY KEY (model, backend, index_name, token_id)
);

-- FP vs control repetition per (model, index): the table `fpprov sql "FROM fp_enrichment"` reads.
-- Example: SELECT model, index_name, n_fp, n_control, round(auc, 3) AS auc, round(auc_low, 3) AS lo, round(auc_high, 3) AS hi FROM fp_enrichment;
CREATE TABLE fp_enrichment (
    model           VARCHAR NOT NULL,      -- models.name
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    n               INTEGER NOT NULL,      -- repetitions the rate is measured at
    n_fp            INTEGER NOT NULL,      -- FPs compared (with a rate and a control)
    n_control       INTEGER NOT NULL,      -- controls compared
    auc             DOUBLE,                -- P(FP rate > control rate) + P(tie) / 2: Mann-Whitney U / (n_fp n_control), ties counted half
    auc_low         DOUBLE,                -- 95% bootstrap CI of the AUC, lower end
    auc_high        DOUBLE,                -- upper end
    p_value         DOUBLE,                -- one-sided Mann-Whitney test (tie-corrected), FP rates greater
    median_fp       DOUBLE,                -- median rate of the FPs
    median_control  DOUBLE,                -- median rate of the controls
    median_ratio    DOUBLE,                -- median_fp / median_control
    ratio_low       DOUBLE,                -- 95% bootstrap CI of the median ratio, lower end
    ratio_high      DOUBLE,                -- upper end
    reason          VARCHAR,               -- why a statistic is NULL (e.g. 'no controls'), else NULL
    PRIMARY KEY (model, backend, index_name)
);

-- Per token of the comparison (FPs and controls): its counts, rate, and, for FPs, where the rate stands among
-- the controls of its frequency bin.
-- Example: SELECT token_id, rate, percentile, q_value FROM token_evidence WHERE role = 'fp' ORDER BY q_value LIMIT 20;
CREATE TABLE token_evidence (
    model           VARCHAR NOT NULL,      -- models.name
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    token_id        INTEGER NOT NULL,      -- the token
    role            VARCHAR NOT NULL,      -- 'fp' | 'control'
    unigram_count   BIGINT NOT NULL,       -- count of its text once
    repeat_count    BIGINT NOT NULL,       -- count of its text repeated n times
    rate            DOUBLE NOT NULL,       -- (repeat_count / unigram_count) ^ (1 / (n - 1)): the corpus analogue of p(t | t), in [0, 1]
    bin             INTEGER NOT NULL,      -- its frequency bin
    n_bin_controls  INTEGER,               -- FPs: distinct controls in its bin; NULL for controls
    percentile      DOUBLE,                -- FPs: 100 x share of its bin's controls with a lower rate; NULL for controls
    percentile_low  DOUBLE,                -- FPs: 95% Wilson CI of that share, lower end (percent)
    percentile_high DOUBLE,                -- upper end
    p_value         DOUBLE,                -- FPs: (1 + controls with rate >= the FP's) / (1 + controls in the bin)
    q_value         DOUBLE,                -- FPs: Benjamini-Hochberg q over the model's FPs in this index
    PRIMARY KEY (model, backend, index_name, token_id)
);

-- Source of each random corpus position behind an index's source baseline (a rerun reuses them).
-- Example: SELECT source, count(*) FROM baseline_positions WHERE status = 'ok' GROUP BY ALL;
CREATE TABLE baseline_positions (
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    seed            INTEGER NOT NULL,      -- sampling seed
    sample_no       INTEGER NOT NULL,      -- 0-based position in the reproducible sample (a larger sample extends it)
    shard           INTEGER NOT NULL,      -- shard drawn (with probability proportional to its size)
    rank            BIGINT NOT NULL,       -- uniform suffix-array rank in that shard
    status          VARCHAR NOT NULL,      -- 'ok' | 'failed' (retried by the next run)
    error           VARCHAR,               -- why the lookup failed; NULL when ok
    doc_ix          BIGINT,                -- the document holding the position
    metadata        VARCHAR,               -- the document's metadata as JSON text (as in documents.metadata)
    source_field    VARCHAR,               -- metadata field the source was read from (--source-field)
    source          VARCHAR,               -- its source (documents.source rules); NULL if unknown
    fetched_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when
    PRIMARY KEY (backend, index_name, seed, sample_no)
);

-- Each source's share of an index, estimated from its random positions, with a 95% Wilson CI.
-- Example: SELECT source, positions, round(share, 3) AS share FROM corpus_baselines ORDER BY share DESC;
-- Columns:
--   backend, index_name, seed: as in `baseline_positions`
--   source: the source, '(unknown)' when the document names none
--   positions: positions that fell in its documents
--   total: positions looked up
--   share: positions / total
CREATE VIEW corpus_baselines AS
SELECT backend, index_name, seed, coalesce(source, '(unknown)') AS source, count(*) AS positions,
       sum(count(*)) OVER (PARTITION BY backend, index_name, seed) AS total,
       count(*) / sum(count(*)) OVER (PARTITION BY backend, index_name, seed) AS share
FROM baseline_positions WHERE status = 'ok'
GROUP BY backend, index_name, seed, coalesce(source, '(unknown)');

-- Source shares among sampled documents against the corpus baseline: per token and pooled over a model's FPs
-- (and, as a second baseline, over its controls).
-- Example: SELECT source, docs, round(share, 3) AS share, round(enrichment, 2) AS x, round(enrichment_low, 2) AS lo
--          FROM source_enrichment WHERE scope = 'pooled' AND role = 'fp' ORDER BY enrichment_low DESC;
CREATE TABLE source_enrichment (
    model           VARCHAR NOT NULL,      -- models.name
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    scope           VARCHAR NOT NULL,      -- 'token' (one token's documents) | 'pooled' (every token of the role)
    token_id        INTEGER,               -- the token (scope 'token'); NULL when pooled
    role            VARCHAR NOT NULL,      -- 'fp' | 'control'
    source          VARCHAR NOT NULL,      -- the source, '(unknown)' when the document names none
    docs            INTEGER NOT NULL,      -- sampled documents from this source
    sampled         INTEGER NOT NULL,      -- all sampled documents of the scope
    share           DOUBLE NOT NULL,       -- docs / sampled
    share_low       DOUBLE,                -- 95% Wilson CI of the share, lower end
    share_high      DOUBLE,                -- upper end
    baseline_share  DOUBLE,                -- the source's share of the corpus (corpus_baselines)
    enrichment      DOUBLE,                -- share / baseline_share
    enrichment_low  DOUBLE,                -- 95% bootstrap CI of the enrichment (documents and baseline positions resampled), lower end
    enrichment_high DOUBLE,                -- upper end
    reason          VARCHAR                -- why enrichment is NULL (e.g. 'source not seen among baseline positions')
);

-- Which index looks most like each model's training data: indexes ranked by FP-vs-control AUC.
-- Example: SELECT model, rank, index_name, round(auc, 3) AS auc, round(auc_low, 3) AS lo FROM corpus_attribution ORDER BY model, rank;
-- Columns:
--   model, backend, index_name, n_fp, n_control, auc, auc_low, auc_high: as in `fp_enrichment`
--   rank: 1 for the index with the highest AUC
CREATE VIEW corpus_attribution AS
SELECT model, backend, index_name, n_fp, n_control, auc, auc_low, auc_high,
       row_number() OVER (PARTITION BY model ORDER BY auc DESC NULLS LAST, auc_low DESC NULLS LAST, index_name) AS rank
FROM fp_enrichment;

-- The suspicion rules now stand on evidence; p(t | t) describes the model and raises no flag.
DELETE FROM suspicion_thresholds;
INSERT INTO suspicion_thresholds VALUES
    ('repetition_enriched', 0.05, NULL, 1,
     'the token''s repetition rate is above its matched controls at Benjamini-Hochberg q <= threshold'),
    ('source_enriched', 2, 5, 1,
     'one source is enriched among the token''s sampled documents: the 95% CI of share / corpus share has its lower end >= threshold (min_support documents at least)');

-- Every flag raised, one row per (model, token, rule), over every index the token was traced in (the
-- strongest evidence per rule). `value` is q (repetition_enriched) or the CI's lower end (source_enriched).
-- Example: SELECT model, text, rule, reason, score FROM suspicious_tokens ORDER BY score DESC LIMIT 20;
-- Columns:
--   model, token_id, raw_token, text, norm_text, prob, family: as in `primary_fps`
--   prob_near_one: p(t | t) >= 0.99, a property of the model, not of its data
--   rule: the rule that fired (suspicion_thresholds.rule)
--   threshold: the threshold in force
--   value: what the rule measured (q for repetition_enriched, the CI's lower end for source_enriched)
--   reason: one readable sentence with the effect size, its CI and n
--   strength: 0 at the threshold up to 1 at saturation
--   contribution: weight * (1 + strength)
--   score: the token's total, the sum of its contributions
--   n_rules: rules the token broke
CREATE VIEW suspicious_tokens AS
WITH th AS (
    SELECT * FROM suspicion_thresholds
), repetition AS (
    SELECT e.model, e.token_id, 'repetition_enriched' AS rule, e.q_value AS value,
           format('repetition rate {:.3g} (count x{} / count = {:,} / {:,}) beats {:.0f}% of {} matched controls (95% CI {:.0f}-{:.0f}%), q = {:.2g}, in {}',
                  e.rate, r.n, e.repeat_count, e.unigram_count, e.percentile, e.n_bin_controls,
                  e.percentile_low, e.percentile_high, e.q_value, e.index_name) AS evidence,
           least(1, log10(greatest(th.threshold, 1e-300) / greatest(e.q_value, 1e-300)) / 3) AS strength
    FROM token_evidence e
    JOIN evidence_runs r USING (model, backend, index_name)
    JOIN th ON th.rule = 'repetition_enriched'
    WHERE e.role = 'fp' AND e.q_value <= th.threshold
    QUALIFY row_number() OVER (PARTITION BY e.model, e.token_id ORDER BY e.q_value, e.index_name) = 1
), source AS (
    SELECT s.model, s.token_id, 'source_enriched' AS rule, s.enrichment_low AS value,
           format('{} is {:.1f}x its corpus share ({:.1f}% of {} sampled documents vs {:.2f}%; 95% CI {:.1f}-{:.1f}x) in {}',
                  to_json(s.source)::VARCHAR, s.enrichment, 100 * s.share, s.sampled, 100 * s.baseline_share,
                  s.enrichment_low, s.enrichment_high, s.index_name) AS evidence,
           least(1, (s.enrichment_low - th.threshold) / greatest(th.threshold, 1e-12)) AS strength
    FROM source_enrichment s
    JOIN th ON th.rule = 'source_enriched'
    WHERE s.scope = 'token' AND s.role = 'fp' AND s.source <> '(unknown)'
      AND s.enrichment_low >= th.threshold AND s.sampled >= coalesce(th.min_support, 0)
    QUALIFY row_number() OVER (PARTITION BY s.model, s.token_id ORDER BY s.enrichment_low DESC, s.index_name, s.source) = 1
), fired AS (
    SELECT fl.*, th.threshold, th.weight FROM (SELECT * FROM repetition UNION ALL SELECT * FROM source) fl
    JOIN th ON th.rule = fl.rule
)
SELECT
    f.model, f.token_id, t.raw_token, t.text, t.norm_text, t.prob, t.prob >= 0.99 AS prob_near_one, t.family,
    f.rule, f.threshold, f.value,
    f.evidence || format(' (threshold {:g})', f.threshold) AS reason,
    greatest(0, f.strength) AS strength,
    f.weight * (1 + greatest(0, f.strength)) AS contribution,
    sum(f.weight * (1 + greatest(0, f.strength))) OVER (PARTITION BY f.model, f.token_id) AS score,
    count(*) OVER (PARTITION BY f.model, f.token_id) AS n_rules
FROM fired f
JOIN primary_fps t ON t.model = f.model AND t.token_id = f.token_id;

-- One row per flagged token: its score, the rules it broke and their reasons, best first.
-- Example: SELECT model, text, round(score, 2) AS score, rules FROM token_suspicion ORDER BY score DESC LIMIT 20;
-- Columns:
--   model, token_id, raw_token, text, norm_text, prob, prob_near_one, family: as in `suspicious_tokens`
--   score, n_rules: as in `suspicious_tokens`
--   rules, reasons: the rules it broke and their reasons, largest contribution first
CREATE VIEW token_suspicion AS
SELECT
    model, token_id, any_value(raw_token) AS raw_token, any_value(text) AS text,
    any_value(norm_text) AS norm_text, any_value(prob) AS prob, any_value(prob_near_one) AS prob_near_one,
    any_value(family) AS family, any_value(score) AS score,
    count(*) AS n_rules,
    list(rule ORDER BY contribution DESC, rule) AS rules,
    list(reason ORDER BY contribution DESC, rule) AS reasons
FROM suspicious_tokens
GROUP BY model, token_id;
