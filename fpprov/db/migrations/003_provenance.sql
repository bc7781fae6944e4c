-- Provenance: how often each fixed-point token's repetition occurs in a training corpus (through an
-- infini-gram backend), which documents contain it, and which sources those documents come from.
--
-- ngram_counts is the cache: one row per query ever sent to a (backend, index), so no query is sent twice.
-- provenance links a model's FP token (with n and a spelling variant) to the query that measures it.
-- documents holds reproducibly sampled matches of a query; the views (fpprov/db/views.sql) join the three.

-- The cache: one row per query ever sent to a (backend, index).
CREATE TABLE ngram_counts (
    backend         VARCHAR NOT NULL,      -- 'api' (infini-gram API) | 'mini' (infini-gram-mini) | 'local' (index dirs)
    index_name      VARCHAR NOT NULL,      -- backend's index name, e.g. 'v4_dclm-baseline_llama'; local: '<dir>@<fingerprint>'
    query           VARCHAR NOT NULL,      -- the exact query string sent (the token text repeated n times)
    status          VARCHAR NOT NULL,      -- 'ok' | 'failed' (failed rows are retried by the next run)
    count           BIGINT,                -- occurrences of the query in the index; NULL unless status = 'ok'
    approx          BOOLEAN,               -- the backend marked the count as approximate
    token_ids       BIGINT[],              -- the query's token ids as the backend tokenized it (NULL for byte/char-level backends)
    tokens          VARCHAR[],             -- the same tokens as strings (e.g. ['▁bl', 'ah']); NULL for byte/char-level
    latency_ms      DOUBLE,                -- backend-reported latency (api/mini) or measured engine time (local), ms
    error           VARCHAR,               -- why the query failed (HTTP status, backend error text); NULL when ok
    attempts        INTEGER NOT NULL DEFAULT 1,  -- runs that sent this query (a failed row counts up on retry)
    find_segments   BIGINT[][],            -- `find` answer, [lo, hi) match ranks per shard; NULL until documents are sampled
    queried_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when the stored answer arrived
    PRIMARY KEY (backend, index_name, query)
);

-- What each FP token's query is: one row per (model, token, backend, index, n, spelling variant).
CREATE TABLE provenance (
    model           VARCHAR NOT NULL,      -- models.name (token_fps.model)
    token_id        INTEGER NOT NULL,      -- token_fps.token_id
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    n               INTEGER NOT NULL,      -- repetitions of the token text in the query (--ngram / --ladder)
    variant         VARCHAR NOT NULL,      -- 'as_is' (decoded text) | 'space_added' (' ' + text) | 'space_stripped' (text without its leading space)
    token_text      VARCHAR,               -- decoded text of the token (token_fps.text), before the variant is applied
    category        VARCHAR,               -- token_fps.category: normal | special | byte_fragment | unreachable
    queryable       BOOLEAN NOT NULL,      -- false: no query can measure this token on this backend (see reason)
    reason          VARCHAR,               -- why not queryable (e.g. 'byte_fragment: no text form'); NULL when queryable
    query           VARCHAR,               -- ngram_counts.query measuring it; NULL when not queryable
    index_is_proxy  BOOLEAN,               -- the index is a public stand-in for undisclosed training data (Qwen 3,
                                           -- Gemma 3); NULL when unknown (local corpora, models without alias)
    updated_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when the entry was last planned
    PRIMARY KEY (model, token_id, backend, index_name, n, variant)
);

-- Sampled matches of a query: where each is in the index, a snippet, its metadata and source.
CREATE TABLE documents (
    backend         VARCHAR NOT NULL,      -- ngram_counts.backend
    index_name      VARCHAR NOT NULL,      -- ngram_counts.index_name
    query           VARCHAR NOT NULL,      -- ngram_counts.query whose match this document holds
    seed            INTEGER NOT NULL,      -- sampling seed (--seed); the same seed always picks the same matches
    sample_no       INTEGER NOT NULL,      -- position in the reproducible sample, 0-based (a larger --docs extends it)
    shard           INTEGER NOT NULL,      -- index shard of the match
    rank            BIGINT NOT NULL,       -- rank of the match in the shard's suffix array (within find_segments)
    status          VARCHAR NOT NULL,      -- 'ok' | 'failed' (failed fetches are retried by the next run)
    error           VARCHAR,               -- why the fetch failed; NULL when ok
    doc_ix          BIGINT,                -- document number in the index
    doc_len         BIGINT,                -- document length in the backend's units (tokens, or bytes/characters)
    disp_len        BIGINT,                -- length of the displayed window the snippet comes from
    needle_offset   BIGINT,                -- where the match starts in that window
    snippet         VARCHAR,               -- text around the match (a few hundred characters)
    metadata        VARCHAR,               -- the document's metadata as JSON text ({"path", "linenum", "metadata":
                                           -- {...}} for local indexes)
    source_field    VARCHAR,               -- metadata field the source was read from (--source-field), e.g. 'source'
    source          VARCHAR,               -- the document's source (value of source_field, else the file path); NULL if unknown
    fetched_at      TIMESTAMP NOT NULL DEFAULT current_timestamp,  -- when the document was fetched
    PRIMARY KEY (backend, index_name, query, seed, sample_no)
);
