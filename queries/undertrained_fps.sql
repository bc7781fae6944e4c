-- FP tokens that are under-trained candidates by magikarp's weight-based indicator, most under-trained first,
-- and per model how many FPs are candidates against the share among non-FPs.
SELECT f.model, f.token_id, f.text, round(f.prob, 4) AS prob, round(u.indicator_value, 4) AS indicator,
       round(u.percentile, 2) AS percentile, round(s.fp_undertrained_share, 4) AS model_fp_share,
       round(s.nonfp_undertrained_share, 4) AS model_nonfp_share
FROM primary_fps f
JOIN undertrained_tokens u ON u.model = f.model AND u.token_id = f.token_id
JOIN fp_undertrained s ON s.model = f.model
WHERE u.undertrained
ORDER BY f.model, u.indicator_value, f.token_id;
