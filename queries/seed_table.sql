-- The seed's Base/Inst tables: token FPs (with the ids each scan covered) and vector FPs per model, in
-- total and by search method (fixed-point iteration, gradient descent).
SELECT model, family,
       base_token_fps AS token_base, inst_token_fps AS token_inst,
       base_tokens_scanned AS scanned_base, inst_tokens_scanned AS scanned_inst,
       base_vector_fps AS vector_base, inst_vector_fps AS vector_inst,
       base_vector_fps_iterate AS iteration_base, inst_vector_fps_iterate AS iteration_inst,
       base_vector_fps_gradient AS gradient_base, inst_vector_fps_gradient AS gradient_inst
FROM seed_counts
ORDER BY family, model;
