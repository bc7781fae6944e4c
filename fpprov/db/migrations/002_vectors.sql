-- Vector fixed points in embedding space (issue 3): runs per seed and method, deduplicated FPs,
-- and the token mixture of each FP. T(x) = softmax(logits(x at position 0)) @ E.

CREATE SEQUENCE vector_run_id_seq START 1;

-- One row per seed and method: how the search from that seed ended. Written as each seed stops, so an
-- interrupted run resumes with the seeds not yet here.
CREATE TABLE vector_runs (
    run_id          INTEGER PRIMARY KEY DEFAULT nextval('vector_run_id_seq'),  -- key
    model           VARCHAR NOT NULL,      -- models.name
    method          VARCHAR NOT NULL,      -- 'iterate' (x <- T(x)) | 'gradient' (AdamW on ||x - T(x)||_2)
    seed            INTEGER NOT NULL,      -- torch seed of x0 ~ N(0, init_std^2)
    settings        VARCHAR NOT NULL,      -- canonical 'key=value ...' of every setting that changes this
                                           -- method's result; (model, method, settings, seed) is unique
    embedding       VARCHAR NOT NULL,      -- 'effective' (embedding module output, e.g. Gemma's sqrt(D) scale
                                           -- included) | 'raw' (weight matrix, the seed's convention)
    dtype           VARCHAR NOT NULL,      -- float32 | float64 | bfloat16 | float16
    device          VARCHAR NOT NULL,      -- cpu | cuda:0 ...
    init_std        DOUBLE NOT NULL,       -- std of x0 (the config's initializer_range by default)
    tolerance       DOUBLE NOT NULL,       -- converged when ||T(x) - x||_2 < tolerance
    max_steps       INTEGER NOT NULL,      -- step budget
    stall_window    INTEGER,               -- iterate: steps without a 2x residual drop before giving up; NULL for gradient
    detach          BOOLEAN,               -- gradient: loss uses detach(T(x)) (true) or backpropagates through T; NULL for iterate
    lr_initial      DOUBLE,                -- gradient: AdamW learning rate at the start; NULL for iterate
    lr_floor        DOUBLE,                -- gradient: the run stops once the plateau schedule takes lr below this
    lr_final        DOUBLE,                -- gradient: learning rate when the run stopped
    weight_decay    DOUBLE,                -- gradient: AdamW weight decay
    batch_size      INTEGER NOT NULL,      -- seeds that shared the batch with this one
    converged       BOOLEAN NOT NULL,      -- final residual < tolerance
    stop_reason     VARCHAR NOT NULL,      -- converged | max_steps | not_converging | precision_floor (stalled at the
                                           -- dtype's rounding of ||x||: tolerance out of reach) | lr_floor | non_finite
    stop_detail     VARCHAR,               -- one line on why it stopped (e.g. the stalled residuals)
    steps           INTEGER NOT NULL,      -- maps of T evaluated before stopping (updates applied = steps - 1 when converged)
    residual        DOUBLE NOT NULL,       -- ||T(x) - x||_2 of the final x (NaN when non-finite)
    best_residual   DOUBLE NOT NULL,       -- smallest residual seen along the way
    vector          FLOAT[] NOT NULL,      -- the final x (D values), converged or not
    vector_norm     DOUBLE NOT NULL,       -- ||x||_2
    vector_id       INTEGER,               -- vector_fps.vector_id this run found; NULL unless converged
    seconds         DOUBLE NOT NULL,       -- wall time from the batch's start until this seed stopped
    torch_version   VARCHAR,               -- torch version used
    transformers_version VARCHAR,          -- transformers version used
    fpprov_version  VARCHAR,               -- fpprov version used
    finished_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when the row was written
    UNIQUE (model, method, settings, seed)
);

CREATE SEQUENCE vector_fp_id_seq START 1;

-- Deduplicated FPs: converged runs of one (model, embedding, dtype) within dedup_distance are one FP,
-- whichever seeds and methods found it.
CREATE TABLE vector_fps (
    vector_id       INTEGER PRIMARY KEY DEFAULT nextval('vector_fp_id_seq'),  -- key, stable across reruns
    model           VARCHAR NOT NULL,      -- models.name
    embedding       VARCHAR NOT NULL,      -- 'effective' | 'raw': the space the vector lives in (see vector_runs)
    dtype           VARCHAR NOT NULL,      -- dtype of the model the FP was found and checked in
    dim             INTEGER NOT NULL,      -- D, the hidden size
    vector          FLOAT[] NOT NULL,      -- the FP x (the first run's final vector; its id stays stable on reruns)
    vector_norm     DOUBLE NOT NULL,       -- ||x||_2
    residual        DOUBLE NOT NULL,       -- ||T(x) - x||_2 from the run whose vector is stored
    dedup_distance  DOUBLE NOT NULL,       -- L2 distance under which two converged vectors are this one FP
    methods         VARCHAR[] NOT NULL,    -- distinct methods that found it, sorted
    seeds           INTEGER[] NOT NULL,    -- distinct seeds that found it (by any method), sorted
    run_ids         INTEGER[] NOT NULL,    -- vector_runs.run_id of every run that found it
    n_runs          INTEGER NOT NULL,      -- len(run_ids)
    rollout_feed    VARCHAR NOT NULL,      -- 'output': each step feeds the previous output T (autoregressive decoding);
                                           -- 'x': each step feeds x again
    rollout_steps   INTEGER NOT NULL,      -- L, the longest sequence decoded (100)
    rollout_dist_by_l DOUBLE[] NOT NULL,   -- element l (1-based) = ||T at position l - x||_2 for sequence length l (KV cache, real positions)
    rollout_dist_max DOUBLE NOT NULL,      -- max of rollout_dist_by_l (infinity when a distance was not finite)
    stable_threshold DOUBLE NOT NULL,      -- stable means rollout_dist_max < stable_threshold
    stable          BOOLEAN NOT NULL,      -- the verdict: rollout_dist_max < stable_threshold
    top_k           INTEGER NOT NULL,      -- rows kept in vector_fp_tokens
    entropy         DOUBLE NOT NULL,       -- entropy (nats) of the mixture y = softmax(logits(x)) over all embedding rows
    top_token_id    INTEGER NOT NULL,      -- argmax of y
    top_token_text  VARCHAR,               -- its decoded text
    top_weight      DOUBLE NOT NULL,       -- its weight in y
    top_token_is_fp BOOLEAN NOT NULL,      -- [t] -> t under greedy decoding (input_ids, no BOS), computed here
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when the FP was first found
    updated_at      TIMESTAMP NOT NULL DEFAULT current_timestamp  -- when it was last analysed
);

-- The top_k tokens of each FP's mixture y = softmax(logits(x)), x = sum_t y_t E_t.
CREATE TABLE vector_fp_tokens (
    vector_id       INTEGER NOT NULL,      -- vector_fps.vector_id
    rank            INTEGER NOT NULL,      -- 1 = heaviest
    token_id        INTEGER NOT NULL,      -- the token (embedding row) id
    raw_token       VARCHAR,               -- vocabulary string (e.g. 'Ġblah', '▁blah'); NULL for padded rows
    text            VARCHAR,               -- decoded text of the single token
    weight          DOUBLE NOT NULL,       -- y_t
    is_token_fp     BOOLEAN NOT NULL,      -- [t] -> t under greedy decoding (input_ids, no BOS)
    PRIMARY KEY (vector_id, rank)
);
