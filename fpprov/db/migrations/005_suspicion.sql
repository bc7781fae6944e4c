-- Suspicion flags: FP tokens whose provenance or behaviour points at odd training data, each flag with the
-- rule that raised it, the threshold it passed and a readable reason, plus a score that ranks tokens.
-- Rules, thresholds and the score are documented in docs/reports.md.

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

-- Every flag raised, one row per (model, token, rule). `value` is what the rule measured, `strength` in
-- [0, 1] how far past the threshold it is (see docs/reports.md), `contribution` = weight * (1 + strength),
-- and `score` the token's total over its flags.
-- Example: SELECT model, text, rule, reason, score FROM suspicious_tokens ORDER BY score DESC LIMIT 20;
-- Columns:
--   model, token_id, raw_token, text, norm_text, prob, family: as in `primary_fps`
--   rule: the rule that fired (suspicion_thresholds.rule)
--   threshold: the threshold in force
--   value: what the rule measured
--   reason: one readable sentence with the evidence and the threshold
--   strength: 0 at the threshold up to 1 at saturation
--   contribution: weight * (1 + strength)
--   score: the token's total, the sum of its contributions
--   n_rules: rules the token broke
CREATE VIEW suspicious_tokens AS
WITH th AS (
    SELECT * FROM suspicion_thresholds
), ok_counts AS (
    SELECT * FROM provenance_counts WHERE status = 'ok' AND count IS NOT NULL
), largest_n AS (
    -- per token, its most demanding measured repetition (largest n), and the highest count there
    SELECT model, token_id, n, count, index_name, index_is_proxy
    FROM ok_counts WHERE n >= 2
    QUALIFY row_number() OVER (PARTITION BY model, token_id ORDER BY n DESC, count DESC, index_name) = 1
), best_ratio AS (
    -- per token, count(t x n) / count(t) at its largest n, same backend, index and spelling variant
    SELECT c.model, c.token_id, c.n, c.index_name, c.count AS count_n, one.count AS count_1,
           c.count / one.count AS ratio
    FROM ok_counts c
    JOIN ok_counts one
      ON one.model = c.model AND one.token_id = c.token_id AND one.backend = c.backend
     AND one.index_name = c.index_name AND one.variant = c.variant AND one.n = 1
    WHERE c.n >= 2 AND one.count > 0
    QUALIFY row_number() OVER (PARTITION BY c.model, c.token_id ORDER BY c.n DESC, ratio DESC, c.index_name) = 1
), concentration AS (
    -- the named source with the largest share among one entry's sampled documents ('(unknown)' never counts
    -- as a source, but its documents stay in the denominator)
    SELECT model, token_id, share, source, sampled, n, index_name
    FROM source_shares
    WHERE source <> '(unknown)'
      AND sampled >= coalesce((SELECT min_support FROM th WHERE rule = 'source_concentration'), 0)
    QUALIFY row_number() OVER (PARTITION BY model, token_id ORDER BY share DESC, sampled DESC, n DESC, source) = 1
), families AS (
    SELECT norm_text, n_families, families FROM shared_fps
), flags AS (
    SELECT f.model, f.token_id, 'repetition_count' AS rule, l.count::DOUBLE AS value,
           format('{} x{} occurs {:,} times in {}{}', to_json(f.text)::VARCHAR, l.n, l.count, l.index_name,
                  CASE WHEN l.index_is_proxy THEN ' (a proxy for the undisclosed training data)' ELSE '' END) AS evidence
    FROM primary_fps f JOIN largest_n l USING (model, token_id)
    UNION ALL
    SELECT f.model, f.token_id, 'repetition_ratio', r.ratio,
           format('count({} x{}) / count({}) = {:,} / {:,} = {:.2e} in {}', to_json(f.text)::VARCHAR, r.n,
                  to_json(f.text)::VARCHAR, r.count_n, r.count_1, r.ratio, r.index_name)
    FROM primary_fps f JOIN best_ratio r USING (model, token_id)
    UNION ALL
    SELECT f.model, f.token_id, 'source_concentration', c.share,
           format('{:.0f}% of {} sampled documents for {} x{} in {} come from {}', 100 * c.share, c.sampled,
                  to_json(f.text)::VARCHAR, c.n, c.index_name, to_json(c.source)::VARCHAR)
    FROM primary_fps f JOIN concentration c USING (model, token_id)
    UNION ALL
    SELECT f.model, f.token_id, 'shared_across_families', s.n_families::DOUBLE,
           format('an FP in {} families: {}', s.n_families, array_to_string(s.families, ', '))
    FROM primary_fps f JOIN families s ON s.norm_text = f.norm_text
    UNION ALL
    SELECT f.model, f.token_id, 'prob_near_one', f.prob,
           format('p(token | token) = {:.6f}', f.prob)
    FROM primary_fps f
), fired AS (
    SELECT fl.*, th.threshold, th.weight,
           -- strength in [0, 1]: 0 at the threshold, 1 at saturation (counts and ratios: 1,000x the
           -- threshold on a log scale; shares and probabilities: 1.0; families: twice the threshold)
           CASE fl.rule
               WHEN 'repetition_count' THEN least(1, log10(fl.value / greatest(th.threshold, 1e-300)) / 3)
               WHEN 'repetition_ratio' THEN least(1, log10(fl.value / greatest(th.threshold, 1e-300)) / 3)
               WHEN 'shared_across_families' THEN least(1, (fl.value - th.threshold) / greatest(th.threshold, 1))
               ELSE least(1, (fl.value - th.threshold) / greatest(1 - th.threshold, 1e-12))
           END AS strength
    FROM flags fl JOIN th ON th.rule = fl.rule
    WHERE fl.value >= th.threshold
)
SELECT
    f.model, f.token_id, t.raw_token, t.text, t.norm_text, t.prob, t.family,
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
--   model, token_id, raw_token, text, norm_text, prob, family: as in `primary_fps`
--   score, n_rules: as in `suspicious_tokens`
--   rules, reasons: the rules it broke and their reasons, largest contribution first
CREATE VIEW token_suspicion AS
SELECT
    model, token_id, any_value(raw_token) AS raw_token, any_value(text) AS text,
    any_value(norm_text) AS norm_text, any_value(prob) AS prob, any_value(family) AS family,
    any_value(score) AS score,
    count(*) AS n_rules,
    list(rule ORDER BY contribution DESC, rule) AS rules,
    list(reason ORDER BY contribution DESC, rule) AS reasons
FROM suspicious_tokens
GROUP BY model, token_id;
