-- Evidence behind every provenance claim: FP tokens against matched non-FP controls of the same scan, the
-- sources of their documents against each source's share of the whole corpus, with effect sizes, 95%
-- confidence intervals and n; flags rebuilt on that evidence (the views in fpprov/db/views.sql). Formulas and
-- assumptions: docs/provenance.md.

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

-- The suspicion rules now stand on evidence; p(t | t) describes the model and raises no flag.
DELETE FROM suspicion_thresholds;
INSERT INTO suspicion_thresholds VALUES
    ('repetition_enriched', 0.05, NULL, 1,
     'the token''s repetition rate is above its matched controls at Benjamini-Hochberg q <= threshold'),
    ('source_enriched', 2, 5, 1,
     'one source is enriched among the token''s sampled documents: the 95% CI of share / corpus share has its lower end >= threshold (min_support documents at least)');
