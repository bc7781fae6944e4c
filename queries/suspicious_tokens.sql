-- Flagged FP tokens ranked by suspicion score, with every rule each one broke and why.
-- Tune the rules with: UPDATE suspicion_thresholds SET threshold = ... WHERE rule = '...'.
SELECT model, token_id, text, round(score, 3) AS score, n_rules,
       array_to_string(rules, ', ') AS rules,
       array_to_string(reasons, ' | ') AS reasons
FROM token_suspicion
ORDER BY score DESC, model, token_id;
