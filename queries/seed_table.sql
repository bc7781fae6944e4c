-- The seed's Base/Inst tables: token FPs (with the ids each scan covered) and vector FPs per model.
SELECT model, family,
       base_token_fps AS token_base, inst_token_fps AS token_inst,
       base_tokens_scanned AS scanned_base, inst_tokens_scanned AS scanned_inst,
       base_vector_fps AS vector_base, inst_vector_fps AS vector_inst
FROM seed_counts
ORDER BY family, model;
