-- Count what the model emits (issue 23): the statistics count the token repeated as the model would write it,
-- decode([t] x n) (spelling 'emitted'), not the decoded text repeated; spellings that can match text that is
-- not the token repeated (a run of one character, the text stripped of its leading space) are kept, labelled
-- loose (view loose_spellings), and out of every statistic (docs/provenance.md).

ALTER TABLE provenance ADD COLUMN in_evidence BOOLEAN;
ALTER TABLE provenance ADD COLUMN loose BOOLEAN;
ALTER TABLE provenance ADD COLUMN spelling_note VARCHAR;

-- Rows planned before this migration spelled the decoded text repeated, which is the emitted run only for
-- byte-level vocabularies: none of them counts until `fpprov provenance` plans the model again.
UPDATE provenance SET in_evidence = false, loose = (variant = 'space_stripped'),
    spelling_note = 'planned before the emitted spelling existed (the decoded text repeated, decode([t]) x n); '
                    'rerun `fpprov provenance` to count the emitted run';

COMMENT ON COLUMN provenance.variant IS
    'the spelling: ''emitted'' (decode([t] x n), what the model writes when it repeats t; n = 1: its decoded '
    'text) | ''emitted_spaced'' ('' '' + emitted, the run inside running text) | ''space_stripped'' (the text '
    'without its leading space, repeated without separator: loose) | ''as_is'', ''space_added'' (the decoded '
    'text, or '' '' + text, repeated: rows planned before the emitted spelling, replaced by a new plan)';
COMMENT ON COLUMN provenance.in_evidence IS
    'true: this row''s count is the one the FP-vs-control statistics, percentiles, source contrasts and flags '
    'use (the emitted run, queryable and not loose); false for every other spelling and for rows planned '
    'before the emitted spelling';
COMMENT ON COLUMN provenance.loose IS
    'true: the spelling can match text that is not the token repeated (a run of one character such as '
    'AAAAAAAAAA, which base64 holds; the text stripped of its leading space): listed in loose_spellings, never '
    'counted in a statistic';
COMMENT ON COLUMN provenance.spelling_note IS
    'how the run was spelled (decode([t] x n) by the model''s tokenizer, or by the byte-level rule the stored '
    'vocabulary proves) or why the row is out of the statistics';

-- Mid-rank percentiles (issue 23): an FP tied with every control of its bin (most rates are exactly 0) reads
-- 50, not 0. Rows computed before this migration hold the strict share until the next provenance run.
COMMENT ON COLUMN token_evidence.percentile IS
    'FPs: the mid-rank, 100 x (controls of its bin with a lower rate + half those with the same rate) / controls '
    'of the bin (50: tied with all of them); runs before issue 23 stored the strict share (lower rates only); '
    'NULL for controls';
COMMENT ON COLUMN token_evidence.percentile_low IS
    'FPs: 95% Wilson CI of the mid-rank share (ties counted one half), lower end (percent)';
COMMENT ON COLUMN token_evidence.repeat_count IS
    'count of its emitted run, decode([t] x n) (provenance rows with in_evidence); runs before issue 23 counted '
    'the decoded text repeated';
