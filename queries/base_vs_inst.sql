-- What instruction tuning did to each family's FPs: kept, lost and gained, over the token ids both
-- models' scans cover (the base_vs_inst view, every column).
SELECT * FROM base_vs_inst
ORDER BY family, base_model;
