-- Which traced index looks most like each model's training data: indexes ranked by FP-vs-control AUC.
SELECT model, rank, index_name, n_fp, n_control,
       round(auc, 3) AS auc, round(auc_low, 3) AS auc_low, round(auc_high, 3) AS auc_high
FROM corpus_attribution
ORDER BY model, rank;
