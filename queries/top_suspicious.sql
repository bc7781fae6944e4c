-- Flags ranked by suspicion score: one row per flagged FP token and rule, with the index it comes from (a
-- proxy unless it is the model's training data) and how often the same rule flags the FPs and their matched
-- controls there. Every column: the suspicious_tokens view. Tune the rules with:
-- UPDATE suspicion_thresholds SET threshold = ... WHERE rule = '...'.
SELECT model, token_id, text, score, rule, reason, index_name, index_is_proxy,
       fp_flagged, fp_with_runs, control_flagged, control_with_runs
FROM suspicious_tokens
ORDER BY score DESC, model, token_id, rule;
