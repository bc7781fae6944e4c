-- Under-trained tokens, found from the weights alone the way magikarp does (Land & Bartolo 2024, "Fishing
-- for Magikarp", arXiv:2405.05417): the output embedding of a token the model never learned stays close to
-- the embeddings of tokens known to be unused. Weight-based indicators only: magikarp's verification
-- prompts are not run, so `undertrained` marks a candidate, not a verified token. docs/undertrained.md explains.
-- The fp_undertrained view compares them with the FPs (fpprov/db/views.sql).

-- One row per model: how its indicators were computed (a rerun replaces the model's rows).
-- Example: SELECT model, indicator, reference_rule, reference_count, threshold, n_undertrained FROM undertrained_runs;
CREATE TABLE undertrained_runs (
    model           VARCHAR PRIMARY KEY,   -- models.name
    indicator       VARCHAR NOT NULL,      -- the main indicator: 'cosine_distance_no_pc1' (tied models: E_out cosine distance to the reference mean, first principal component removed; NULL for every id without a reference set) | 'input_norm' (untied models, magikarp's default for them)
    reference_rule  VARCHAR NOT NULL,      -- how the reference (known-unused) set was chosen, the first rule that finds ids: 'unused_names' (vocabulary entries named like <unused12>) | 'invalid_utf8_bytes' (single-byte tokens of 0xC0, 0xC1, 0xF5-0xFF, which UTF-8 never uses) | 'unreachable' (ids the tokenizer never produces) | 'none'
    reference_count INTEGER NOT NULL,      -- ids in the reference set
    percentile      DOUBLE NOT NULL,       -- threshold percentile of the indicator among ordinary ids (magikarp's 2%)
    threshold       DOUBLE,                -- indicator value at that percentile; an id at or below it is a candidate
    n_tokens        INTEGER NOT NULL,      -- ids with an indicator (the embedding rows)
    n_undertrained  INTEGER NOT NULL,      -- candidates (reference ids included)
    tied_head       BOOLEAN NOT NULL,      -- the output embedding is the input embedding
    fpprov_version  VARCHAR,               -- fpprov that computed the rows
    computed_at     TIMESTAMP NOT NULL DEFAULT current_timestamp  -- when
);

-- Per model and token id, magikarp's weight-based indicators. Lower = more like the unused tokens.
-- Example: SELECT token_id, indicator_value FROM undertrained_tokens WHERE model = 'gemma3-270m' AND undertrained ORDER BY indicator_value LIMIT 20;
CREATE TABLE undertrained_tokens (
    model           VARCHAR NOT NULL,      -- models.name
    token_id        INTEGER NOT NULL,      -- token id (embedding row)
    is_reference    BOOLEAN NOT NULL,      -- in the model's reference (known-unused) set
    is_special      BOOLEAN NOT NULL,      -- the tokenizer marks the id special (left out of the threshold's percentile)
    cosine_distance DOUBLE,                -- 1 - cos(E_out[t], mean of E_out over the reference set); NULL without a reference set
    cosine_distance_no_pc1 DOUBLE,         -- the same after removing the first principal component of E_out from every row and from the mean
    input_norm      DOUBLE NOT NULL,       -- L2 norm of the input embedding row (magikarp's indicator for untied models)
    indicator_value DOUBLE,                -- the main indicator (undertrained_runs.indicator) of this id
    percentile      DOUBLE,                -- share of ordinary ids with a lower-or-equal indicator, in percent
    undertrained    BOOLEAN NOT NULL,      -- candidate: indicator_value <= undertrained_runs.threshold
    PRIMARY KEY (model, token_id)
);
