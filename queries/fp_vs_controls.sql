-- FP tokens against their matched controls, per model and index: the AUC of the repetition rates with its
-- 95% bootstrap CI, the median ratio, and how many tokens took part (and from what sample of the FPs).
SELECT e.model, e.index_name, r.sample_rule, e.n_fp, e.n_control,
       round(e.auc, 3) AS auc, round(e.auc_low, 3) AS auc_low, round(e.auc_high, 3) AS auc_high,
       round(e.median_ratio, 3) AS median_ratio, e.reason
FROM fp_enrichment e
JOIN evidence_runs r USING (model, backend, index_name)
ORDER BY e.model, e.auc DESC NULLS LAST;
