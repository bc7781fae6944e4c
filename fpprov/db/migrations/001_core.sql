-- Core tables: models, token fixed-point scans and their results.

-- One row per model name: where it was loaded from and its shape.
CREATE TABLE models (
    name            VARCHAR PRIMARY KEY,   -- alias (gemma3-270m) or the spec given (hub id; folder or file name)
    source_kind     VARCHAR NOT NULL,      -- 'hub' | 'hub-cache' | 'directory' | 'gguf' | 'gguf-package'
    location        VARCHAR,               -- hub id, directory or .gguf path actually loaded
    hub_id          VARCHAR,               -- the model's hub id when known
    family          VARCHAR,               -- olmo2 | qwen3 | gemma3 | ... (else the config's model_type)
    variant         VARCHAR,               -- 'base' | 'inst' | NULL when unknown
    tokenizer_family VARCHAR,              -- tokenizer lineage from the alias file, else NULL
    quantization    VARCHAR,               -- e.g. 'Q4_K_M GGUF dequantized to float32'; NULL for none
    architecture    VARCHAR,               -- transformers class, e.g. Gemma3ForCausalLM
    vocab_size      INTEGER,               -- len(tokenizer), added tokens included
    embedding_rows  INTEGER,               -- rows of the input embedding matrix
    hidden_size     INTEGER,               -- hidden size D
    num_layers      INTEGER,               -- decoder layers
    tied_head       BOOLEAN,               -- output embedding shares the input embedding's weight
    rotary          BOOLEAN,               -- rotary position embeddings (the RoPE reduction holds)
    updated_at      TIMESTAMP NOT NULL DEFAULT current_timestamp  -- when the row was last written
);

CREATE SEQUENCE scan_id_seq START 1;

-- One row per scan (model x dtype x BOS x id range x check length x verify mode), with its settings and counters.
CREATE TABLE scans (
    scan_id         INTEGER PRIMARY KEY DEFAULT nextval('scan_id_seq'),  -- key: the scan's id
    model           VARCHAR NOT NULL,      -- models.name
    dtype           VARCHAR NOT NULL,      -- float32 | float64 | bfloat16 | float16
    device          VARCHAR NOT NULL,      -- cpu | cuda:0 ...
    bos             BOOLEAN NOT NULL,      -- a BOS token was prepended: input [bos, t]
    id_start        INTEGER NOT NULL,      -- first token id of the scanned range
    id_stop         INTEGER NOT NULL,      -- one past the last token id of the range
    batch_size      INTEGER NOT NULL,      -- ids per forward batch (a resumed scan keeps its first run's)
    commit_every    INTEGER NOT NULL DEFAULT 4096,  -- ids per committed chunk (a resumed scan keeps it)
    tolerance       DOUBLE NOT NULL,       -- relative margin under which a verdict is re-checked in float64 (a
                                           -- resumed scan keeps it)
    check_length    INTEGER,               -- --check-length L, else NULL
    verify          VARCHAR NOT NULL DEFAULT 'all',  -- float64 re-checks: 'calibrated' (verdicts within safety_factor x calibration_error, near ties included) | 'all' (every FP + near ties) | 'near'
    method          VARCHAR NOT NULL,      -- 'length1-pruned' (exact length-1 shortcut) | 'forward-pruned' (the
                                           -- model's own forward)
    torch_version   VARCHAR,               -- torch version used
    transformers_version VARCHAR,          -- transformers version used
    tokenizers_version VARCHAR,            -- tokenizers version used
    fpprov_version  VARCHAR,               -- fpprov version used
    started_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when the scan first started
    finished_at     TIMESTAMP,             -- NULL until complete
    tokens_scanned  INTEGER NOT NULL DEFAULT 0,  -- ids whose verdict is stored
    tokens_skipped  INTEGER NOT NULL DEFAULT 0,  -- ids without both a tokenizer entry and an embedding row, so not scanned
    fp_count        INTEGER NOT NULL DEFAULT 0,  -- token FPs found
    rechecked       INTEGER NOT NULL DEFAULT 0,  -- verdicts re-checked in float64
    flipped         INTEGER NOT NULL DEFAULT 0,  -- re-checks whose float64 verdict differs from the screen
    complete        BOOLEAN NOT NULL DEFAULT false,  -- every chunk of the id range is committed
    seconds         DOUBLE                 -- wall time spent scanning, summed over resumed runs
);

-- Chunks of the id range whose results are committed; a resumed scan skips them.
CREATE TABLE scan_chunks (
    scan_id         INTEGER NOT NULL,      -- scans.scan_id
    chunk_start     INTEGER NOT NULL,      -- first id of the chunk
    chunk_stop      INTEGER NOT NULL,      -- one past its last id
    tokens_scanned  INTEGER NOT NULL,      -- ids of the chunk with a stored verdict
    tokens_skipped  INTEGER NOT NULL,      -- ids of the chunk skipped (see scans.tokens_skipped)
    fp_count        INTEGER NOT NULL,      -- token FPs found in the chunk
    committed_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when the chunk was committed
    PRIMARY KEY (scan_id, chunk_start)
);

-- One row per token FP of a scan.
CREATE TABLE token_fps (
    scan_id         INTEGER NOT NULL,      -- scans.scan_id
    model           VARCHAR NOT NULL,      -- models.name
    token_id        INTEGER NOT NULL,      -- the token's vocabulary id
    raw_token       VARCHAR,               -- the vocabulary string (e.g. 'Ġblah', '▁blah', '<0xC3>')
    text            VARCHAR,               -- decoded text of the single token
    norm_text       VARCHAR,               -- text for matching across tokenizers: leading-space markers (Ġ, ▁) as a
                                           -- space, Unicode NFC
    category        VARCHAR NOT NULL,      -- normal | special (the tokenizer's special tokens) | byte_fragment
                                           -- (decodes to an incomplete UTF-8 sequence, or a <0xNN> byte token) |
                                           -- unreachable (re-encoding its text does not give the token back)
    prob            DOUBLE NOT NULL,       -- softmax probability of the token itself for the input [t]
    logit           DOUBLE NOT NULL,       -- its own logit
    runner_up_id    INTEGER,               -- best competitor
    runner_up_logit DOUBLE,                -- the best competitor's logit
    margin          DOUBLE NOT NULL,       -- logit - runner_up_logit, in the scan dtype (> 0)
    verified_float64 BOOLEAN NOT NULL,     -- re-checked one token at a time in float64 and still an FP
    margin_float64  DOUBLE,                -- the float64 margin, NULL when not re-checked (with --verify near)
    length_check    BOOLEAN,               -- [t]*L -> t at the last position (with --check-length), else NULL
    PRIMARY KEY (scan_id, token_id)
);

-- Every verdict re-checked in float64: all FPs and the near-ties among non-FPs.
CREATE TABLE scan_rechecks (
    scan_id         INTEGER NOT NULL,      -- scans.scan_id
    token_id        INTEGER NOT NULL,      -- the token re-checked
    screen_is_fp    BOOLEAN NOT NULL,      -- verdict of the batched screen in the scan dtype
    screen_margin   DOUBLE,                -- own logit minus best competitor in the scan dtype (for rows dropped
                                           -- early, the margin to the competitor that dropped them)
    float64_is_fp   BOOLEAN NOT NULL,      -- the verdict that counts
    float64_margin  DOUBLE NOT NULL,       -- own logit minus best competitor, in float64
    float64_runner_up_id INTEGER,          -- the best competitor in float64
    PRIMARY KEY (scan_id, token_id)
);
