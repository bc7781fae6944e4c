-- The validation study (issue 24, `fpprov validate`, docs/validation.md): small models ("organisms") trained
-- here on corpora with repetition planted at known doses, scanned and traced by fpprov's own pipeline, and what
-- the pipeline recovered of what was planted. Every measurement table carries the study id; a study is one row
-- of validation_runs. The views over these tables (validation_*) are in fpprov/db/views.sql.

-- One row per study run (a rerun with the same settings has the same study_id and replaces its rows).
-- Example: SELECT study_id, design, complete, round(seconds) AS s FROM validation_runs;
CREATE TABLE validation_runs (
    study_id        VARCHAR PRIMARY KEY,
    design          VARCHAR NOT NULL,
    settings        VARCHAR NOT NULL,
    fpprov_version  VARCHAR NOT NULL,
    torch_version   VARCHAR,
    transformers_version VARCHAR,
    tokenizer_sha256 VARCHAR,
    n_organisms     INTEGER,
    n_indexes       INTEGER,
    expected_seconds DOUBLE,
    seconds         DOUBLE,
    started_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at     TIMESTAMP,
    complete        BOOLEAN NOT NULL DEFAULT false
);
COMMENT ON TABLE validation_runs IS
    'One row per validation study (`fpprov validate`): organisms trained on corpora with known planted repetition, '
    'then scanned and traced by fpprov''s own pipeline (docs/validation.md). A rerun with the same settings keeps '
    'its study_id and reuses the cached organisms and indexes.'
    ' Example: SELECT study_id, design, complete, round(seconds) AS s FROM validation_runs;';
COMMENT ON COLUMN validation_runs.study_id IS
    'key: ''<design>-<first 10 hex digits of the sha256 of the settings>'', e.g. ''quick-3f2a…''';
COMMENT ON COLUMN validation_runs.design IS '''quick'' (the demo''s two organisms) | ''full'' | ''custom''';
COMMENT ON COLUMN validation_runs.settings IS
    'the whole design as JSON: sources, mixtures, doses, words per dose, training and provenance settings';
COMMENT ON COLUMN validation_runs.fpprov_version IS 'fpprov''s version that ran the study';
COMMENT ON COLUMN validation_runs.torch_version IS 'torch''s version (part of every organism''s cache key)';
COMMENT ON COLUMN validation_runs.transformers_version IS 'transformers'' version (part of the cache key)';
COMMENT ON COLUMN validation_runs.tokenizer_sha256 IS 'sha256 of the shared tokenizer.json of every organism';
COMMENT ON COLUMN validation_runs.n_organisms IS 'organisms in the design (the null included)';
COMMENT ON COLUMN validation_runs.n_indexes IS 'local indexes built, one per organism corpus';
COMMENT ON COLUMN validation_runs.expected_seconds IS
    'the time stated before the study started (measured per-step estimate; cached parts count 0)';
COMMENT ON COLUMN validation_runs.seconds IS 'wall-clock seconds of the run; NULL while it runs or if it was cut';
COMMENT ON COLUMN validation_runs.started_at IS 'when the run started';
COMMENT ON COLUMN validation_runs.finished_at IS 'when it finished; NULL while it runs or if it was cut';
COMMENT ON COLUMN validation_runs.complete IS
    'every measurement table holds this study''s rows; false: interrupted (what is done is kept)';

-- One row per organism of a study: its mixture, what was planted, its model and its own index.
-- Example: SELECT organism, model, mixture, planted_source, n_fps, round(final_loss, 2) AS loss FROM validation_organisms;
CREATE TABLE validation_organisms (
    study_id        VARCHAR NOT NULL,
    organism        VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    mixture_name    VARCHAR NOT NULL,
    mixture         VARCHAR[] NOT NULL,
    planted_source  VARCHAR,
    is_null         BOOLEAN NOT NULL,
    n_planted       INTEGER NOT NULL,
    index_name      VARCHAR,
    index_dir       VARCHAR,
    corpus_dir      VARCHAR NOT NULL,
    corpus_sha256   VARCHAR NOT NULL,
    corpus_tokens   BIGINT,
    model_path      VARCHAR NOT NULL,
    cache_key       VARCHAR NOT NULL,
    steps           INTEGER,
    tokens_seen     BIGINT,
    final_loss      DOUBLE,
    train_seconds   DOUBLE,
    trained         BOOLEAN,
    n_fps           INTEGER,
    PRIMARY KEY (study_id, organism)
);
COMMENT ON TABLE validation_organisms IS
    'One row per organism of a validation study: its training mixture, what was planted where, the model (as '
    'scanned: models.name) and the local index of its own corpus.'
    ' Example: SELECT organism, model, mixture, planted_source, n_fps, round(final_loss, 2) AS loss FROM validation_organisms;';
COMMENT ON COLUMN validation_organisms.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_organisms.organism IS 'the organism''s short name in the design, e.g. ''a1'', ''null''';
COMMENT ON COLUMN validation_organisms.model IS
    'models.name it was scanned and traced under, e.g. ''organism-full-a1'' (the study''s design in the name)';
COMMENT ON COLUMN validation_organisms.mixture_name IS 'the training mixture''s name, e.g. ''A''; organisms of one mixture share every source';
COMMENT ON COLUMN validation_organisms.mixture IS 'the sources it was trained on (sorted)';
COMMENT ON COLUMN validation_organisms.planted_source IS 'the one source its words were planted into; NULL for the null';
COMMENT ON COLUMN validation_organisms.is_null IS 'nothing was planted (the null organism)';
COMMENT ON COLUMN validation_organisms.n_planted IS 'planted words (doses above 0, the shared words included)';
COMMENT ON COLUMN validation_organisms.index_name IS
    'ngram_counts.index_name of the local index of its own corpus (its manifest names this model in training_data_of)';
COMMENT ON COLUMN validation_organisms.index_dir IS 'that index''s folder';
COMMENT ON COLUMN validation_organisms.corpus_dir IS 'its corpus folder (corpus.jsonl and PLAN.txt)';
COMMENT ON COLUMN validation_organisms.corpus_sha256 IS 'sha256 of its corpus lines (part of the cache key)';
COMMENT ON COLUMN validation_organisms.corpus_tokens IS 'tokens in its training stream (documents and EOS)';
COMMENT ON COLUMN validation_organisms.model_path IS 'the saved model (`fpprov scan MODEL_PATH` loads it)';
COMMENT ON COLUMN validation_organisms.cache_key IS 'the organism cache key (docs/organisms.md)';
COMMENT ON COLUMN validation_organisms.steps IS 'optimizer steps';
COMMENT ON COLUMN validation_organisms.tokens_seen IS 'steps x batch x sequence length';
COMMENT ON COLUMN validation_organisms.final_loss IS 'training loss of the last step';
COMMENT ON COLUMN validation_organisms.train_seconds IS 'training time when it was trained (as first measured; kept from the cache)';
COMMENT ON COLUMN validation_organisms.trained IS 'this run trained it; false: loaded from the cache';
COMMENT ON COLUMN validation_organisms.n_fps IS 'token FPs of its scan (full vocabulary, no BOS)';

-- One row per planted word and per twin of each organism: what was planted and what fpprov found.
-- Example: SELECT organism, role, dose, word, is_fp, round(prob, 2) AS p, flagged_source_right FROM validation_tokens ORDER BY dose DESC;
CREATE TABLE validation_tokens (
    study_id        VARCHAR NOT NULL,
    organism        VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    token_id        INTEGER NOT NULL,
    word            VARCHAR NOT NULL,
    role            VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,
    pair_token_id   INTEGER,
    dose            INTEGER NOT NULL,
    source          VARCHAR,
    runs_inserted   INTEGER NOT NULL,
    copies_inserted INTEGER NOT NULL,
    natural_count   INTEGER,
    is_fp           BOOLEAN NOT NULL,
    prob            DOUBLE,
    traced          BOOLEAN NOT NULL,
    flagged_repetition BOOLEAN NOT NULL,
    repetition_q    DOUBLE,
    flagged_source  BOOLEAN NOT NULL,
    flagged_source_right BOOLEAN NOT NULL,
    flagged_source_name VARCHAR,
    own_rate        DOUBLE,
    PRIMARY KEY (study_id, organism, token_id)
);
COMMENT ON TABLE validation_tokens IS
    'Ground truth against the pipeline: every planted word and every unplanted twin of each organism, its dose, '
    'whether the scan found it an FP, and whether a flag rule fired for it in the organism''s own index.'
    ' Example: SELECT organism, role, dose, word, is_fp, round(prob, 2) AS p, flagged_source_right FROM validation_tokens ORDER BY dose DESC;';
COMMENT ON COLUMN validation_tokens.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_tokens.organism IS 'validation_organisms.organism';
COMMENT ON COLUMN validation_tokens.model IS 'models.name';
COMMENT ON COLUMN validation_tokens.token_id IS 'the word''s single-token id in the shared tokenizer';
COMMENT ON COLUMN validation_tokens.word IS 'the token''s text (a space and three or more lowercase letters)';
COMMENT ON COLUMN validation_tokens.role IS
    '''planted'' (its runs were inserted) | ''twin'' (the unplanted word of similar natural frequency paired with it)';
COMMENT ON COLUMN validation_tokens.kind IS
    '''ladder'' (a dose of the ladder, own to this organism) | ''shared'' (a common word planted at one high dose '
    'into the shared source of one organism of each mixture, to make shared FPs)';
COMMENT ON COLUMN validation_tokens.pair_token_id IS 'the twin of a planted word, the planted word of a twin';
COMMENT ON COLUMN validation_tokens.dose IS
    'runs planted: for a twin, its planted word''s dose (the twin itself has none planted); 0 on the ladder: '
    'chosen and recorded like the others, nothing inserted';
COMMENT ON COLUMN validation_tokens.source IS 'the source the runs went into';
COMMENT ON COLUMN validation_tokens.runs_inserted IS 'runs inserted (0 for twins)';
COMMENT ON COLUMN validation_tokens.copies_inserted IS 'copies of the word inserted, over all runs (0 for twins)';
COMMENT ON COLUMN validation_tokens.natural_count IS 'occurrences of the token in the unplanted text of the pool';
COMMENT ON COLUMN validation_tokens.is_fp IS 'the scan found it a token FP (token_fps)';
COMMENT ON COLUMN validation_tokens.prob IS 'p(t | t) of the input [t] (NULL when not an FP)';
COMMENT ON COLUMN validation_tokens.traced IS
    'provenance compared it in the organism''s own index (token_evidence holds it); only FPs are traced';
COMMENT ON COLUMN validation_tokens.flagged_repetition IS
    'the repetition_enriched rule fired for it in its own index (token_evidence.q_value <= the threshold)';
COMMENT ON COLUMN validation_tokens.repetition_q IS 'its q value in its own index (token_evidence.q_value); NULL if not traced';
COMMENT ON COLUMN validation_tokens.flagged_source IS
    'the source_enriched rule fired for it in its own index (suspicious_tokens), whichever source it named';
COMMENT ON COLUMN validation_tokens.flagged_source_right IS
    'the source_enriched rule fired for it in its own index and named the source its runs were planted into';
COMMENT ON COLUMN validation_tokens.flagged_source_name IS 'the source the fired source_enriched flag named; NULL when none fired';
COMMENT ON COLUMN validation_tokens.own_rate IS 'its repetition rate in its own index (token_evidence.rate); NULL if not traced';

-- Dose-response: share of planted words that became FPs per dose, against their twins.
-- Example: SELECT dose, words_fp, n_words, round(fp_share, 2) AS share, round(fp_low, 2) AS lo, round(fp_high, 2) AS hi, twins_fp, n_twins FROM validation_dose_response WHERE organism = 'all';
CREATE TABLE validation_dose_response (
    study_id        VARCHAR NOT NULL,
    organism        VARCHAR NOT NULL,
    dose            INTEGER NOT NULL,
    copies_per_token DOUBLE,
    n_words         INTEGER NOT NULL,
    words_fp        INTEGER NOT NULL,
    fp_share        DOUBLE,
    fp_low          DOUBLE,
    fp_high         DOUBLE,
    n_twins         INTEGER NOT NULL,
    twins_fp        INTEGER NOT NULL,
    twin_share      DOUBLE,
    twin_low        DOUBLE,
    twin_high       DOUBLE,
    diff            DOUBLE,
    diff_low        DOUBLE,
    diff_high       DOUBLE,
    PRIMARY KEY (study_id, organism, dose)
);
COMMENT ON TABLE validation_dose_response IS
    'Per dose (runs planted): the share of planted ladder words that became token FPs, with a 95% Wilson CI, '
    'against the share of their unplanted twins, and the difference with its Newcombe CI.'
    ' Example: SELECT dose, words_fp, n_words, round(fp_share, 2) AS share, round(fp_low, 2) AS lo, round(fp_high, 2) AS hi, twins_fp, n_twins FROM validation_dose_response WHERE organism = ''all'';';
COMMENT ON COLUMN validation_dose_response.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_dose_response.organism IS
    'validation_organisms.organism, or ''all'' for the words of every planted organism pooled';
COMMENT ON COLUMN validation_dose_response.dose IS 'runs of 10-30 copies planted per word (0: chosen, nothing planted)';
COMMENT ON COLUMN validation_dose_response.copies_per_token IS
    'mean copies planted per word over the organism''s training tokens (the dose as a share of the corpus)';
COMMENT ON COLUMN validation_dose_response.n_words IS 'planted words at this dose';
COMMENT ON COLUMN validation_dose_response.words_fp IS 'of them, token FPs';
COMMENT ON COLUMN validation_dose_response.fp_share IS 'words_fp / n_words';
COMMENT ON COLUMN validation_dose_response.fp_low IS '95% Wilson CI of fp_share, lower end';
COMMENT ON COLUMN validation_dose_response.fp_high IS 'upper end';
COMMENT ON COLUMN validation_dose_response.n_twins IS 'their twins (unplanted, similar natural frequency)';
COMMENT ON COLUMN validation_dose_response.twins_fp IS 'of them, token FPs';
COMMENT ON COLUMN validation_dose_response.twin_share IS 'twins_fp / n_twins';
COMMENT ON COLUMN validation_dose_response.twin_low IS '95% Wilson CI of twin_share, lower end';
COMMENT ON COLUMN validation_dose_response.twin_high IS 'upper end';
COMMENT ON COLUMN validation_dose_response.diff IS 'fp_share - twin_share';
COMMENT ON COLUMN validation_dose_response.diff_low IS '95% CI of diff (Newcombe''s hybrid score interval), lower end';
COMMENT ON COLUMN validation_dose_response.diff_high IS 'upper end';

-- Each flag rule's sensitivity (planted FPs flagged) beside its false-flag rate (unplanted FPs, twins,
-- controls, the null organism's FPs), each a share with its Wilson CI and n.
-- Example: SELECT rule, grp, dose_min, flagged, n, round(rate, 2) AS rate, round(rate_low, 2) AS lo, round(rate_high, 2) AS hi FROM validation_flag_rates ORDER BY rule, grp;
CREATE TABLE validation_flag_rates (
    study_id        VARCHAR NOT NULL,
    rule            VARCHAR NOT NULL,
    grp             VARCHAR NOT NULL,
    dose_min        INTEGER NOT NULL,
    n               INTEGER NOT NULL,
    flagged         INTEGER NOT NULL,
    rate            DOUBLE,
    rate_low        DOUBLE,
    rate_high       DOUBLE,
    nominal         DOUBLE,
    compares_with   VARCHAR,
    PRIMARY KEY (study_id, rule, grp, dose_min)
);
COMMENT ON TABLE validation_flag_rates IS
    'Per flag rule, in each organism''s own index: the share of planted FPs it flagged (sensitivity, per lowest '
    'dose) and the share of tokens it should not flag that it did (false flags), each with a 95% Wilson CI and n.'
    ' Example: SELECT rule, grp, dose_min, flagged, n, round(rate, 2) AS rate, round(rate_low, 2) AS lo, round(rate_high, 2) AS hi FROM validation_flag_rates ORDER BY rule, grp;';
COMMENT ON COLUMN validation_flag_rates.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_flag_rates.rule IS
    '''repetition_enriched'' | ''source_enriched'' (suspicion_thresholds.rule) | ''any'' (either rule)';
COMMENT ON COLUMN validation_flag_rates.grp IS
    'which tokens: ''planted_fp'' (planted words that are FPs: flagged at all) | ''planted_fp_right_source'' '
    '(flagged by source_enriched naming the planted source; source rule only) | ''unplanted_fp'' (FPs of planted '
    'organisms neither planted nor twins: false flags unless natural repetition earns them) | ''twin_fp'' (twins '
    'that are FPs) | ''control'' (matched controls the rule would flag; source rule only: repetition is defined '
    'for FPs only) | ''null_fp'' (every FP of the null organism, where nothing was planted)';
COMMENT ON COLUMN validation_flag_rates.dose_min IS
    'planted groups: words with dose >= dose_min (one row per dose of the ladder); 0 for the other groups';
COMMENT ON COLUMN validation_flag_rates.n IS 'tokens in the group (traced in their own index)';
COMMENT ON COLUMN validation_flag_rates.flagged IS 'of them, flagged by the rule';
COMMENT ON COLUMN validation_flag_rates.rate IS 'flagged / n';
COMMENT ON COLUMN validation_flag_rates.rate_low IS '95% Wilson CI of rate, lower end';
COMMENT ON COLUMN validation_flag_rates.rate_high IS 'upper end';
COMMENT ON COLUMN validation_flag_rates.nominal IS
    'the rate the rule promises at most where nothing is planted: the FDR threshold for repetition_enriched '
    '(null_fp); NULL where the rule makes no such promise';
COMMENT ON COLUMN validation_flag_rates.compares_with IS 'one sentence: what this rate is set against';

-- Attribution: for each organism, every study index ranked.
-- Example: SELECT organism, rank, index_organism, relation, round(auc, 3) AS auc, planted_rate_diff, tied_with_next FROM validation_attribution ORDER BY organism, rank;
CREATE TABLE validation_attribution (
    study_id        VARCHAR NOT NULL,
    organism        VARCHAR NOT NULL,
    index_name      VARCHAR NOT NULL,
    index_organism  VARCHAR NOT NULL,
    relation        VARCHAR NOT NULL,
    is_own          BOOLEAN NOT NULL,
    rank            INTEGER NOT NULL,
    statistic       VARCHAR NOT NULL,
    auc             DOUBLE,
    auc_low         DOUBLE,
    auc_high        DOUBLE,
    any_diff        DOUBLE,
    any_diff_low    DOUBLE,
    any_diff_high   DOUBLE,
    n_fp            INTEGER,
    n_control       INTEGER,
    tied_with_next  BOOLEAN NOT NULL,
    PRIMARY KEY (study_id, organism, index_name)
);
COMMENT ON TABLE validation_attribution IS
    'For each organism, every index of the study ranked as its likely training corpus by fpprov''s own '
    'FP-vs-control comparison (corpus_attribution: AUC, ties broken by the CI''s lower end), with the truth beside it.'
    ' Example: SELECT organism, rank, index_organism, relation, round(auc, 3) AS auc, tied_with_next FROM validation_attribution ORDER BY organism, rank;';
COMMENT ON COLUMN validation_attribution.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_attribution.organism IS 'the traced organism (validation_organisms.organism)';
COMMENT ON COLUMN validation_attribution.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN validation_attribution.index_organism IS 'the organism whose corpus the index holds';
COMMENT ON COLUMN validation_attribution.relation IS
    '''own'' (its training corpus) | ''same_mixture'' (the same sources, other plants: differs only by what was '
    'planted) | ''shares_sources'' (another mixture with a source in common) | ''unseen'' (no source in common)';
COMMENT ON COLUMN validation_attribution.is_own IS 'the index is the organism''s own training corpus (not a proxy)';
COMMENT ON COLUMN validation_attribution.rank IS '1 for the index ranked most likely';
COMMENT ON COLUMN validation_attribution.statistic IS 'what ranks the indexes, e.g. ''auc'' (fp_enrichment.auc, then auc_low)';
COMMENT ON COLUMN validation_attribution.auc IS 'FP-vs-control AUC in this index (fp_enrichment.auc)';
COMMENT ON COLUMN validation_attribution.auc_low IS '95% bootstrap CI of the AUC, lower end';
COMMENT ON COLUMN validation_attribution.auc_high IS 'upper end';
COMMENT ON COLUMN validation_attribution.any_diff IS
    'FP share with any n-fold run minus the controls'' (fp_effects.any_diff)';
COMMENT ON COLUMN validation_attribution.any_diff_low IS '95% Newcombe CI of any_diff, lower end';
COMMENT ON COLUMN validation_attribution.any_diff_high IS 'upper end';
COMMENT ON COLUMN validation_attribution.n_fp IS 'FPs compared in this index';
COMMENT ON COLUMN validation_attribution.n_control IS 'controls compared';
COMMENT ON COLUMN validation_attribution.tied_with_next IS
    'the AUC CIs of this index and the next-ranked one overlap: the order between them is not resolved';

-- Natural FPs (neither planted nor twins): do they repeat more in the organism's own corpus than their
-- controls, and more than in corpora it never saw?
-- Example: SELECT organism, relation, n_fp, round(fp_share, 2) AS fp, round(control_share, 2) AS ctl, round(diff, 2) AS diff, round(diff_low, 2) AS lo FROM validation_natural ORDER BY organism, relation;
CREATE TABLE validation_natural (
    study_id        VARCHAR NOT NULL,
    organism        VARCHAR NOT NULL,
    index_name      VARCHAR NOT NULL,
    relation        VARCHAR NOT NULL,
    n               INTEGER NOT NULL,
    n_fp            INTEGER NOT NULL,
    fp_any          INTEGER NOT NULL,
    fp_share        DOUBLE,
    fp_low          DOUBLE,
    fp_high         DOUBLE,
    n_control       INTEGER NOT NULL,
    control_any     INTEGER NOT NULL,
    control_share   DOUBLE,
    control_low     DOUBLE,
    control_high    DOUBLE,
    diff            DOUBLE,
    diff_low        DOUBLE,
    diff_high       DOUBLE,
    median_fp_rate  DOUBLE,
    median_control_rate DOUBLE,
    PRIMARY KEY (study_id, organism, index_name)
);
COMMENT ON TABLE validation_natural IS
    'The seed''s claim without planting: the FPs nobody planted (neither planted words nor twins), per organism and '
    'index: the share whose text repeated n (2) times occurs at all, against their matched controls in the same index; '
    'compare the ''own'' row with the rows of corpora of other mixtures (''shares_sources'', ''unseen'').'
    ' Example: SELECT organism, relation, n_fp, round(fp_share, 2) AS fp, round(control_share, 2) AS ctl, round(diff, 2) AS diff, round(diff_low, 2) AS lo FROM validation_natural ORDER BY organism, relation;';
COMMENT ON COLUMN validation_natural.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_natural.organism IS 'validation_organisms.organism';
COMMENT ON COLUMN validation_natural.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN validation_natural.relation IS '''own'' | ''same_mixture'' | ''shares_sources'' | ''unseen'' (as in validation_attribution)';
COMMENT ON COLUMN validation_natural.n IS
    'the repetitions counted: 2, the token followed by itself (the corpus''s own p(t | t), which a small model''s '
    'FPs mirror most directly; runs of 10 are rare outside planted text)';
COMMENT ON COLUMN validation_natural.n_fp IS 'natural FPs compared in this index (in token_evidence, with a control)';
COMMENT ON COLUMN validation_natural.fp_any IS 'of them, with count(t x n) > 0 (provenance_counts, the spelling in evidence)';
COMMENT ON COLUMN validation_natural.fp_share IS 'fp_any / n_fp';
COMMENT ON COLUMN validation_natural.fp_low IS '95% Wilson CI of fp_share, lower end';
COMMENT ON COLUMN validation_natural.fp_high IS 'upper end';
COMMENT ON COLUMN validation_natural.n_control IS 'their matched controls compared';
COMMENT ON COLUMN validation_natural.control_any IS 'of them, with count(t x n) > 0';
COMMENT ON COLUMN validation_natural.control_share IS 'control_any / n_control';
COMMENT ON COLUMN validation_natural.control_low IS '95% Wilson CI of control_share, lower end';
COMMENT ON COLUMN validation_natural.control_high IS 'upper end';
COMMENT ON COLUMN validation_natural.diff IS 'fp_share - control_share';
COMMENT ON COLUMN validation_natural.diff_low IS '95% Newcombe CI of diff, lower end';
COMMENT ON COLUMN validation_natural.diff_high IS 'upper end';
COMMENT ON COLUMN validation_natural.median_fp_rate IS
    'median of count(t x n) / count(t) over the natural FPs (for n = 2: the share of the token''s occurrences '
    'followed by itself)';
COMMENT ON COLUMN validation_natural.median_control_rate IS 'the same over their controls';

-- Pairs of organisms: FPs they share, and how many of those the shared plants explain.
-- Example: SELECT organism_a, organism_b, shared_sources, shared, shared_planted, shared_planted_expected, round(jaccard, 3) AS j FROM validation_shared;
CREATE TABLE validation_shared (
    study_id        VARCHAR NOT NULL,
    organism_a      VARCHAR NOT NULL,
    organism_b      VARCHAR NOT NULL,
    shared_sources  VARCHAR[] NOT NULL,
    fps_a           INTEGER NOT NULL,
    fps_b           INTEGER NOT NULL,
    shared          INTEGER NOT NULL,
    jaccard         DOUBLE,
    shared_planted  INTEGER NOT NULL,
    shared_planted_expected INTEGER NOT NULL,
    shared_natural  INTEGER NOT NULL,
    PRIMARY KEY (study_id, organism_a, organism_b)
);
COMMENT ON TABLE validation_shared IS
    'Each unordered pair of organisms (they share one tokenizer): FP texts in common (as model_overlap), how many '
    'of them are words planted into both, and how many both had planted at all.'
    ' Example: SELECT organism_a, organism_b, shared_sources, shared, shared_planted, shared_planted_expected, round(jaccard, 3) AS j FROM validation_shared;';
COMMENT ON COLUMN validation_shared.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_shared.organism_a IS 'the pair (organism_a < organism_b)';
COMMENT ON COLUMN validation_shared.organism_b IS 'the pair (organism_a < organism_b)';
COMMENT ON COLUMN validation_shared.shared_sources IS 'sources both were trained on';
COMMENT ON COLUMN validation_shared.fps_a IS 'FP texts of each (model_overlap.fps_a)';
COMMENT ON COLUMN validation_shared.fps_b IS 'FP texts of each (model_overlap.fps_b)';
COMMENT ON COLUMN validation_shared.shared IS 'FP texts both have (model_overlap.shared)';
COMMENT ON COLUMN validation_shared.jaccard IS 'shared / union (model_overlap.jaccard)';
COMMENT ON COLUMN validation_shared.shared_planted IS 'shared FP texts that were planted (dose > 0) into both';
COMMENT ON COLUMN validation_shared.shared_planted_expected IS 'words planted (dose > 0) into both, FPs or not';
COMMENT ON COLUMN validation_shared.shared_natural IS 'shared FP texts planted into neither (twins and natural FPs)';

-- The study's headline figures, one row each, with n, CI and what they are set against.
-- Example: SELECT measure, k, n, round(estimate, 3) AS est, round(low, 3) AS lo, round(high, 3) AS hi, reference, note FROM validation_summary;
CREATE TABLE validation_summary (
    study_id        VARCHAR NOT NULL,
    measure         VARCHAR NOT NULL,
    k               INTEGER,
    n               INTEGER,
    estimate        DOUBLE,
    low             DOUBLE,
    high            DOUBLE,
    reference       DOUBLE,
    reference_label VARCHAR,
    note            VARCHAR,
    PRIMARY KEY (study_id, measure)
);
COMMENT ON TABLE validation_summary IS
    'The study''s headline figures: the dose where half the planted words become FPs, attribution top-1 accuracy '
    'against chance, the null organism''s flag rate against the nominal FDR, the natural-FP contrasts; each with '
    'k, n, CI and its reference.'
    ' Example: SELECT measure, k, n, round(estimate, 3) AS est, round(low, 3) AS lo, round(high, 3) AS hi, reference, note FROM validation_summary;';
COMMENT ON COLUMN validation_summary.study_id IS 'validation_runs.study_id';
COMMENT ON COLUMN validation_summary.measure IS
    '''dose_50'' (runs where the pooled FP share crosses 50%, interpolated on log dose) | ''attribution_top1'' '
    '(organisms whose own index ranks first) | ''attribution_top1_resolved'' (first and not tied with the next) | '
    '''null_flag_rate'' (the null organism''s FPs flagged by any rule) | ''natural_own_vs_control'' (natural FPs '
    'with any n-fold run minus their controls'', own index, pooled) | ''natural_own_vs_other_mixture'' (natural FPs '
    'with any n-fold run, own index minus the indexes of the other mixtures, pooled; those corpora share at most '
    'some sources with the organism''s) | ''twin_fp_rate'' (twins that are FPs) | ''planted_fp_rate'' (ladder '
    'words planted at dose > 0 that are FPs)';
COMMENT ON COLUMN validation_summary.k IS 'successes counted (NULL where the measure is not a count)';
COMMENT ON COLUMN validation_summary.n IS 'trials (organisms, tokens) behind the estimate';
COMMENT ON COLUMN validation_summary.estimate IS 'the figure (a share, a difference of shares, or runs for dose_50)';
COMMENT ON COLUMN validation_summary.low IS '95% CI, lower end (Wilson for shares, Newcombe for differences); NULL if none';
COMMENT ON COLUMN validation_summary.high IS 'upper end';
COMMENT ON COLUMN validation_summary.reference IS 'what the estimate is set against (chance level, nominal FDR, 0)';
COMMENT ON COLUMN validation_summary.reference_label IS 'what reference is, in words (e.g. ''chance: 1 of 5 indexes'')';
COMMENT ON COLUMN validation_summary.note IS 'a caveat in words, e.g. ''not reached'' or the ties counted';
