-- Evidence that tells the right story: every traced index is labelled a proxy unless it is known to be the
-- model's training data; the FP-vs-control comparison carries an effect size with a rule for when a difference
-- is meaningful; sources are judged for FPs against the matched controls' documents, not only against the
-- corpus (docs/provenance.md).

-- An index is a proxy unless shown otherwise: rows planned before this rule said NULL for "unknown".
UPDATE provenance SET index_is_proxy = true WHERE index_is_proxy IS NULL;
COMMENT ON COLUMN provenance.index_is_proxy IS
    'true: the index is a proxy, not this model''s training data (the default); false only when the model''s alias '
    'names it as the model''s training data, the local index''s manifest lists the model in training_data_of, or '
    'the run was told so (--training-data); never NULL';

ALTER TABLE evidence_runs ADD COLUMN index_is_proxy BOOLEAN;
COMMENT ON COLUMN evidence_runs.index_is_proxy IS
    'the index is a proxy, not this model''s training data (as provenance.index_is_proxy); NULL for runs before '
    'this column';

-- The FP-vs-control effect beside fp_enrichment (one row per (model, backend, index)): the share of tokens with
-- any n-fold run and what may be said (a separate table, so fp_enrichment keeps its columns).
-- Example: SELECT model, index_name, fp_any, n_fp, control_any, n_control, round(any_diff, 3) AS diff, effect FROM fp_effects;
CREATE TABLE fp_effects (
    model           VARCHAR NOT NULL,
    backend         VARCHAR NOT NULL,
    index_name      VARCHAR NOT NULL,
    n_fp            INTEGER NOT NULL,
    fp_any          INTEGER NOT NULL,
    n_control       INTEGER NOT NULL,
    control_any     INTEGER NOT NULL,
    any_diff        DOUBLE,
    any_diff_low    DOUBLE,
    any_diff_high   DOUBLE,
    effect          VARCHAR NOT NULL,
    PRIMARY KEY (model, backend, index_name)
);
COMMENT ON TABLE fp_effects IS
    'The FP-vs-control effect per (model, index), beside fp_enrichment: the share of tokens with any n-fold run, '
    'FPs against controls, and what may be said under the rule for a meaningful difference (docs/provenance.md).'
    ' Example: SELECT model, index_name, fp_any, n_fp, control_any, n_control, round(any_diff, 3) AS diff, effect FROM fp_effects;';
COMMENT ON COLUMN fp_effects.model IS 'models.name';
COMMENT ON COLUMN fp_effects.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN fp_effects.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN fp_effects.n_fp IS 'FPs compared (as fp_enrichment.n_fp)';
COMMENT ON COLUMN fp_effects.fp_any IS 'FPs compared whose text repeated n times occurs at all (count(t x n) > 0)';
COMMENT ON COLUMN fp_effects.n_control IS 'controls compared (as fp_enrichment.n_control)';
COMMENT ON COLUMN fp_effects.control_any IS 'controls compared with count(t x n) > 0';
COMMENT ON COLUMN fp_effects.any_diff IS
    'fp_any / n_fp - control_any / n_control: the difference in the share of tokens with any n-fold run';
COMMENT ON COLUMN fp_effects.any_diff_low IS
    '95% CI of any_diff (Newcombe''s hybrid score interval from the two Wilson intervals), lower end';
COMMENT ON COLUMN fp_effects.any_diff_high IS 'upper end';
COMMENT ON COLUMN fp_effects.effect IS
    'what may be said: ''more'' / ''less'' (|AUC - 0.5| >= 0.05 and the 95% CI excludes 0.5) | ''no meaningful '
    'difference'' | ''too few to say'' (under 20 tokens a side, or no CI)';

-- Per source: do the FPs' sampled documents come from it more often than their matched controls' documents?
-- Example: SELECT source, fp_docs, control_docs, round(odds_ratio, 2) AS odds, round(or_low, 2) AS lo, q_value FROM source_contrast ORDER BY q_value;
CREATE TABLE source_contrast (
    model           VARCHAR NOT NULL,      -- models.name
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    source          VARCHAR NOT NULL,      -- the source, '(unknown)' when the document names none
    fp_docs         INTEGER NOT NULL,      -- sampled documents of the FPs' n-fold runs from this source
    fp_sampled      INTEGER NOT NULL,      -- all sampled documents of the FPs
    control_docs    INTEGER NOT NULL,      -- sampled documents of the controls' runs from this source (same sampling)
    control_sampled INTEGER NOT NULL,      -- all sampled documents of the controls
    odds_ratio      DOUBLE,                -- conditional maximum-likelihood odds ratio, FPs over controls (inf when no control document is from the source)
    or_low          DOUBLE,                -- exact 95% CI of the odds ratio (scipy.stats.contingency.odds_ratio), lower end
    or_high         DOUBLE,                -- upper end
    p_value         DOUBLE,                -- Fisher's exact test, one-sided: FPs' documents come from the source more often
    q_value         DOUBLE,                -- Benjamini-Hochberg over the sources of this (model, index)
    baseline_share  DOUBLE,                -- the source's share of the corpus (the second baseline); NULL without one
    PRIMARY KEY (model, backend, index_name, source)
);

COMMENT ON TABLE source_contrast IS
    'Per source, the FPs'' sampled documents against their matched controls'' documents: is the source specific to FPs, or does repetition of any text live there? Example: SELECT source, fp_docs, control_docs, round(odds_ratio, 2) AS odds, round(or_low, 2) AS lo, q_value FROM source_contrast ORDER BY q_value;';
COMMENT ON COLUMN source_contrast.model IS 'models.name';
COMMENT ON COLUMN source_contrast.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN source_contrast.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN source_contrast.source IS 'the source, ''(unknown)'' when the document names none';
COMMENT ON COLUMN source_contrast.fp_docs IS 'sampled documents of the FPs'' n-fold runs from this source';
COMMENT ON COLUMN source_contrast.fp_sampled IS 'all sampled documents of the FPs';
COMMENT ON COLUMN source_contrast.control_docs IS 'sampled documents of the controls'' n-fold runs from this source (the same sampling as the FPs'')';
COMMENT ON COLUMN source_contrast.control_sampled IS 'all sampled documents of the controls';
COMMENT ON COLUMN source_contrast.odds_ratio IS 'conditional maximum-likelihood odds ratio of coming from this source, FP documents over control documents (inf when no control document is from it)';
COMMENT ON COLUMN source_contrast.or_low IS 'exact 95% CI of the odds ratio (scipy.stats.contingency.odds_ratio, conditional), lower end';
COMMENT ON COLUMN source_contrast.or_high IS 'upper end';
COMMENT ON COLUMN source_contrast.p_value IS 'Fisher''s exact test, one-sided: the FPs'' documents come from the source more often than the controls''';
COMMENT ON COLUMN source_contrast.q_value IS 'Benjamini-Hochberg q over the sources of this (model, index)';
COMMENT ON COLUMN source_contrast.baseline_share IS 'the source''s share of the corpus (corpus_baselines), the second baseline; NULL without one';

UPDATE suspicion_thresholds SET description =
    'a source is enriched among the token''s sampled documents: the 95% CI of share / corpus share (joint Wilson) '
    'has its lower end >= threshold (min_support documents at least), and the source is specific to FPs: their '
    'documents come from it more than their matched controls'' documents (Fisher, odds-ratio CI above 1, BH q <= '
    '0.05 over sources)'
WHERE rule = 'source_enriched';
