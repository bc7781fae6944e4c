-- Gradient descent's protocol recorded with each run (issue 11): which preset (fpprov's default, scaled to
-- the space, or the seed's script) and the settings that were not columns before. The full key stays in
-- vector_runs.settings; NULL for iterate rows and for rows written before this migration.
-- Example: SELECT protocol, loss, lr_initial, patience, count(*) FILTER (converged) FROM vector_runs WHERE method = 'gradient' GROUP BY ALL;
ALTER TABLE vector_runs ADD COLUMN protocol VARCHAR;      -- gradient: default | seed, '+custom' when an option replaced one of its values
ALTER TABLE vector_runs ADD COLUMN patience INTEGER;      -- gradient: ReduceLROnPlateau patience (steps without a relative 1e-4 improvement before a cut)
ALTER TABLE vector_runs ADD COLUMN lr_factor DOUBLE;      -- gradient: ReduceLROnPlateau factor (each cut multiplies lr by it)
ALTER TABLE vector_runs ADD COLUMN loss VARCHAR;          -- gradient: norm (||x - detach(T(x))||, the seed's) | squared (0.5 ||x - detach(T(x))||^2)
