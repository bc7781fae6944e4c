-- FP texts shared by models of two or more families (different tokenizers and training data), most
-- widely shared first: candidates for data common to several corpora.
SELECT norm_text, n_families, n_models, families, models, round(mean_prob, 4) AS mean_prob
FROM shared_fps
WHERE n_families >= 2
ORDER BY n_families DESC, n_models DESC, mean_prob DESC, norm_text;
