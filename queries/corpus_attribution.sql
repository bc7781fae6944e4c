-- Which traced index looks most like each model's training data: indexes ranked by FP-vs-control AUC
-- (the corpus_attribution view, every column).
SELECT * FROM corpus_attribution
ORDER BY model, rank;
