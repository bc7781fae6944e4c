-- Suspicion flags: FP tokens whose provenance or behaviour points at odd training data, each flag with the
-- rule that raised it, the threshold it passed and a readable reason, plus a score that ranks tokens.
-- Rules, thresholds and the score are documented in docs/reports.md; the flags are the suspicious_tokens
-- and token_suspicion views (fpprov/db/views.sql).

-- One row per rule. Users tune a rule for good with e.g.
--   UPDATE suspicion_thresholds SET threshold = 0.8 WHERE rule = 'source_concentration';
-- and `fpprov report --threshold source_concentration=0.8` overrides it for one report without writing
-- (a TEMP table of the same name shadows this one, views included).
CREATE TABLE suspicion_thresholds (
    rule            VARCHAR PRIMARY KEY,   -- rule name (see docs/reports.md)
    threshold       DOUBLE NOT NULL,       -- the rule fires when its value reaches this
    min_support     INTEGER,               -- least evidence the rule needs (sampled documents); NULL if none
    weight          DOUBLE NOT NULL DEFAULT 1,  -- the rule's weight in the score
    description     VARCHAR NOT NULL       -- what the rule means
);

INSERT INTO suspicion_thresholds VALUES
    ('repetition_count', 1000, NULL, 1,
     'the token repeated n times (largest n counted) occurs at least this often in the index'),
    ('repetition_ratio', 0.001, NULL, 1,
     'count(token x n) / count(token) reaches this: the token is unusually often followed by itself'),
    ('source_concentration', 0.5, 5, 1,
     'this share of the sampled documents matching the repetition comes from one source (min_support documents at least)'),
    ('shared_across_families', 2, NULL, 1,
     'the FP text is an FP of models in at least this many families (different tokenizers and data)'),
    ('prob_near_one', 0.99, NULL, 1,
     'the model gives the token at least this probability after itself');
