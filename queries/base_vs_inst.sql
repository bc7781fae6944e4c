-- What instruction tuning did to each family's FPs: kept, lost and gained, over the token ids both
-- models' scans cover.
SELECT family, base_model, inst_model, base_fps, inst_fps, kept, lost, gained,
       round(kept_share, 3) AS kept_share, id_start, id_stop
FROM base_vs_inst
ORDER BY family, base_model;
